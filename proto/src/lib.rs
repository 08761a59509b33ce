//! Every chargemesh protobuf package, generated once by `build.rs`.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod codec;

/// The encoded `FileDescriptorSet` of every chargemesh proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/chargemesh_descriptor.bin"));

pub mod common {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.common.v1.rs"));
    }
}

pub mod asset {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.asset.v1.rs"));
    }
}

pub mod telemetry {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.telemetry.v1.rs"));
    }
}

pub mod regulator {
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.regulator.v2.rs"));
    }
}

pub mod reporting {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.reporting.v1.rs"));
    }
}

pub mod dispatch {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.dispatch.v1.rs"));
    }
}

pub mod metering {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.metering.v1.rs"));
    }
}

pub mod complaints {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.complaints.v1.rs"));
    }
}

pub mod journal {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.journal.v1.rs"));
    }
}

pub mod kpi {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chargemesh.kpi.v1.rs"));
    }
}
