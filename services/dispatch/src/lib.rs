//! Dispatch: the standard's operational core as rules over plain types — staff and crews, repair
//! work orders on the FAULT-5/FAULT-6/MON-4 clocks. The store, the gRPC service and the deadline
//! scheduler build on these (see the open issue).

pub mod domain;
