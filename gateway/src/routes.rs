//! Where each public gRPC service is implemented: one component per service, so each method has
//! exactly one implementation, and the gateway forwards by this one table (checked against the
//! descriptor set by the tests). Services an owner serves to regulators live in
//! `chargemesh.regulator.v2`, one service per owner.

/// Every public gRPC service and the mesh component that implements it.
pub const ROUTES: &[(&str, &str)] = &[
    ("chargemesh.asset.v1.AssetService", "asset"),
    ("chargemesh.asset.v1.AssetRecordsService", "asset"),
    ("chargemesh.asset.v1.ChargePointService", "asset"),
    ("chargemesh.regulator.v2.RegistryService", "asset"),
    ("chargemesh.telemetry.v1.TelemetryService", "telemetry"),
    (
        "chargemesh.telemetry.v1.TelemetryRecordsService",
        "telemetry",
    ),
    ("chargemesh.regulator.v2.StatusService", "telemetry"),
    ("chargemesh.dispatch.v1.DispatchService", "dispatch"),
    ("chargemesh.dispatch.v1.DispatchRecordsService", "dispatch"),
    ("chargemesh.metering.v1.MeteringService", "metering"),
    ("chargemesh.metering.v1.MeteringRecordsService", "metering"),
    ("chargemesh.regulator.v2.OrderService", "metering"),
    ("chargemesh.complaints.v1.ComplaintsService", "complaints"),
    (
        "chargemesh.complaints.v1.ComplaintsRecordsService",
        "complaints",
    ),
    ("chargemesh.reporting.v1.ReportingService", "reporting"),
    (
        "chargemesh.reporting.v1.ReportingRecordsService",
        "reporting",
    ),
    ("chargemesh.regulator.v2.KpiService", "reporting"),
];

/// Services that are a protocol between mesh components, not an API: each component that keeps
/// a journal serves its own, read by reporting directly over the mesh. The edge does not route
/// them (like gRPC health, every implementer answers for itself).
pub const MESH_INTERNAL: &[(&str, &[&str])] = &[(
    "chargemesh.journal.v1.JournalService",
    &["dispatch", "metering", "complaints"],
)];

/// The components, in the order a process starts them.
pub const COMPONENTS: &[&str] = &[
    "asset",
    "telemetry",
    "dispatch",
    "metering",
    "complaints",
    "reporting",
];

/// The service of a request path such as `/chargemesh.asset.v1.AssetService/GetStation`.
pub fn service_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    (!method.is_empty() && !method.contains('/')).then_some(service)
}

/// The component that implements a request path's service.
pub fn component_of(path: &str) -> Option<&'static str> {
    let service = service_of(path)?;
    ROUTES
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, component)| *component)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn services() -> Vec<String> {
        let set = prost_types::FileDescriptorSet::decode(chargemesh_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptors");
        set.file
            .iter()
            .flat_map(|f| {
                f.service
                    .iter()
                    .map(move |s| format!("{}.{}", f.package(), s.name()))
            })
            .collect()
    }

    #[test]
    fn every_service_in_the_protos_is_routed_once_or_mesh_internal_and_nothing_else() {
        let all = services();
        for service in &all {
            let routed = ROUTES.iter().filter(|(s, _)| s == service).count();
            let internal = MESH_INTERNAL.iter().filter(|(s, _)| s == service).count();
            assert_eq!(
                routed + internal,
                1,
                "{service} must be routed to exactly one component or be mesh-internal"
            );
        }
        for (service, component) in ROUTES {
            assert!(
                all.iter().any(|s| s == service),
                "route for unknown {service}"
            );
            assert!(
                COMPONENTS.contains(component),
                "{component} is no component"
            );
        }
    }

    #[test]
    fn paths_name_their_component() {
        assert_eq!(
            component_of("/chargemesh.asset.v1.AssetService/GetStation"),
            Some("asset")
        );
        assert_eq!(
            component_of("/chargemesh.regulator.v2.StatusService/GetStationStatus"),
            Some("telemetry")
        );
        assert_eq!(
            component_of("/chargemesh.regulator.v2.OrderService/ListChargeOrders"),
            Some("metering")
        );
        assert_eq!(component_of("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            component_of("/chargemesh.journal.v1.JournalService/ReadJournal"),
            None
        );
        assert_eq!(component_of("/chargemesh.asset.v1.AssetService"), None);
    }
}
