//! The method-level policy: which principal kinds, and which staff roles, may call which method.
//! A method missing here does not exist at the edge (UNIMPLEMENTED); which component serves it is
//! [`crate::routes`]'s. Resource-level rules (whose
//! station, which area) are the services' to check.

use chargemesh_kit::{Principal, PrincipalKind};

/// Staff roles of the standard's posts (REQ STAFF-1) and of the platform.
pub mod roles {
    pub const MONITOR: &str = "monitor";
    pub const REPAIRER: &str = "repairer";
    pub const STATION_MASTER: &str = "station_master";
    pub const SAFETY_OFFICER: &str = "safety_officer";
    pub const OM_MANAGER: &str = "om_manager";
    pub const COMPLAINT_HANDLER: &str = "complaint_handler";
    pub const PLATFORM_ADMIN: &str = "platform_admin";
}

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Certificate principal kinds allowed.
    pub kinds: &'static [PrincipalKind],
    /// Staff roles allowed; `None` means staff may not call, `Some(&[])` any staff role.
    pub staff: Option<&'static [&'static str]>,
}

impl Rule {
    pub fn allows(&self, principal: &Principal) -> bool {
        match principal {
            Principal::Staff { roles, .. } => match self.staff {
                None => false,
                Some([]) => true,
                Some(allowed) => roles.iter().any(|r| allowed.contains(&r.as_str())),
            },
            other => self.kinds.contains(&other.kind()),
        }
    }
}

use PrincipalKind::{Operator, Pile, Regulator, Service, Station};
use roles::*;

const READ: Rule = Rule {
    kinds: &[Operator, Station, Pile, Regulator, Service],
    staff: Some(&[]),
};
const OPERATOR_WRITE: Rule = Rule {
    kinds: &[Operator, Service],
    staff: Some(&[OM_MANAGER, STATION_MASTER, PLATFORM_ADMIN]),
};
const ARCHIVE_WRITE: Rule = Rule {
    kinds: &[Operator, Service],
    staff: Some(&[OM_MANAGER, STATION_MASTER, REPAIRER, PLATFORM_ADMIN]),
};
const SUSPENSION: Rule = Rule {
    kinds: &[Operator, Service],
    staff: Some(&[MONITOR, OM_MANAGER, STATION_MASTER]),
};
const MANAGEMENT: Rule = Rule {
    kinds: &[Operator, Service],
    staff: Some(&[OM_MANAGER, PLATFORM_ADMIN]),
};

const ASSET: &str = "/chargemesh.asset.v1.AssetService/";
const CHARGE_POINTS: &str = "/chargemesh.asset.v1.ChargePointService/";
const TELEMETRY: &str = "/chargemesh.telemetry.v1.TelemetryService/";
const REGULATOR_REGISTRY: &str = "/chargemesh.regulator.v2.RegistryService/";
const REGULATOR_STATUS: &str = "/chargemesh.regulator.v2.StatusService/";
const REGULATOR_ORDERS: &str = "/chargemesh.regulator.v2.OrderService/";
const REGULATOR_KPIS: &str = "/chargemesh.regulator.v2.KpiService/";
const REPORTING: &str = "/chargemesh.reporting.v1.ReportingService/";
const DISPATCH: &str = "/chargemesh.dispatch.v1.DispatchService/";
const METERING: &str = "/chargemesh.metering.v1.MeteringService/";
const COMPLAINTS: &str = "/chargemesh.complaints.v1.ComplaintsService/";
const DISPATCH_RECORDS: &str = "/chargemesh.dispatch.v1.DispatchRecordsService/";
const METERING_RECORDS: &str = "/chargemesh.metering.v1.MeteringRecordsService/";
const COMPLAINTS_RECORDS: &str = "/chargemesh.complaints.v1.ComplaintsRecordsService/";
const ASSET_RECORDS: &str = "/chargemesh.asset.v1.AssetRecordsService/";
const TELEMETRY_RECORDS: &str = "/chargemesh.telemetry.v1.TelemetryRecordsService/";
const REPORTING_RECORDS: &str = "/chargemesh.reporting.v1.ReportingRecordsService/";

/// REQ REC-3, FAULT-9: management deletes a record past retention and marks records important;
/// the platform purges.
const RECORD_DELETE: Rule = staff_of(&[OM_MANAGER, PLATFORM_ADMIN]);
const RECORD_MARK: Rule = staff_of(&[OM_MANAGER, SAFETY_OFFICER, MONITOR, PLATFORM_ADMIN]);
const RECORD_PURGE: Rule = Rule {
    kinds: &[Service],
    staff: Some(&[PLATFORM_ADMIN]),
};

/// Repair work: operators and mesh services, and the staff posts named.
const fn staff_of(roles: &'static [&'static str]) -> Rule {
    Rule {
        kinds: &[Operator, Service],
        staff: Some(roles),
    }
}

const OPERATOR_READ: Rule = Rule {
    kinds: &[Operator, Service],
    staff: Some(&[]),
};

/// Piles, stations and operator platforms report telemetry; staff do not.
const REPORTERS: Rule = Rule {
    kinds: &[Operator, Station, Pile, Service],
    staff: None,
};
/// The regulator's view; the platform's administrators may look too.
const REGULATOR_VIEW: Rule = Rule {
    kinds: &[Regulator, Service],
    staff: Some(&[PLATFORM_ADMIN]),
};

/// Anyone, with or without a credential (the public station page).
const PUBLIC: Rule = Rule {
    kinds: &[
        Operator,
        Station,
        Pile,
        Regulator,
        Service,
        PrincipalKind::Public,
    ],
    staff: Some(&[]),
};
/// A station's live status: the regulator, the operator's platform and staff, and the public.
const PUBLIC_STATUS: Rule = Rule {
    kinds: &[Regulator, Operator, Service, PrincipalKind::Public],
    staff: Some(&[]),
};

/// The live status: the regulator, the operator's platform and any of its staff.
const STATUS_VIEW: Rule = Rule {
    kinds: &[Regulator, Operator, Service],
    staff: Some(&[]),
};

/// A token is checked by what a driver presents it to: a pile, a station controller, a
/// platform; staff manage the list instead.
const TOKEN_CHECK: Rule = Rule {
    kinds: &[Operator, Station, Pile, Service],
    staff: None,
};

/// Mesh components only.
const MESH_ONLY: Rule = Rule {
    kinds: &[Service],
    staff: None,
};
/// Charge orders: their operator, a station controller of theirs, the regulator of their area.
const ORDERS_READ: Rule = Rule {
    kinds: &[Operator, Station, Regulator, Service],
    staff: Some(&[]),
};
/// Platforms and station controllers report finished sessions; staff do not.
const ORDER_REPORTERS: Rule = Rule {
    kinds: &[Operator, Station, Service],
    staff: None,
};

/// Every routed method and its rule.
pub const POLICY: &[(&str, &str, Rule)] = &[
    (ASSET, "CreateOperator", MANAGEMENT),
    (ASSET, "GetOperator", READ),
    (ASSET, "ListOperators", READ),
    (ASSET, "UpdateOperator", MANAGEMENT),
    (ASSET, "CreateStation", OPERATOR_WRITE),
    (ASSET, "GetStation", READ),
    (ASSET, "ListStations", READ),
    (ASSET, "UpdateStation", OPERATOR_WRITE),
    // REQ BASE-3, MON-10: the operator publishes its tariffs; anyone who may read the station
    // may read them.
    (ASSET, "ScheduleTariff", OPERATOR_WRITE),
    (ASSET, "ListTariffVersions", READ),
    // REQ SVC-1, SIGN-1, SIGN-2: what the sign at the station says is everyone's to read.
    (ASSET, "GetPublicStation", PUBLIC),
    (ASSET, "AcceptStation", OPERATOR_WRITE),
    (ASSET, "FileStation", OPERATOR_WRITE),
    (ASSET, "ConnectStation", OPERATOR_WRITE),
    (ASSET, "StartTrialOperation", OPERATOR_WRITE),
    (ASSET, "CommissionStation", OPERATOR_WRITE),
    (ASSET, "CreatePile", OPERATOR_WRITE),
    (ASSET, "GetPile", READ),
    (ASSET, "ListPiles", READ),
    (ASSET, "UpdatePile", ARCHIVE_WRITE),
    // REQ MON-4, MON-5: the monitor requests suspension and resumption.
    (ASSET, "SuspendPile", SUSPENSION),
    (ASSET, "ResumePile", SUSPENSION),
    // REQ MON-6: retirement is a management decision.
    (ASSET, "RetirePile", MANAGEMENT),
    (ASSET, "CreateEquipment", OPERATOR_WRITE),
    (ASSET, "ListEquipment", READ),
    (ASSET, "UpdateEquipment", ARCHIVE_WRITE),
    (ASSET, "CreateMetrologyCertificate", OPERATOR_WRITE),
    (ASSET, "ListMetrologyCertificates", READ),
    (ASSET, "CheckSettlementEligibility", READ),
    (ASSET, "ListChangeRecords", READ),
    // REQ NETSEC-1: a charge point's password is a credential of the operator's managers; the
    // edge alone authenticates with it and notes unknown charge points.
    (CHARGE_POINTS, "SetChargePointPassword", OPERATOR_WRITE),
    (CHARGE_POINTS, "AuthenticateChargePoint", MESH_ONLY),
    (CHARGE_POINTS, "RecordUnknownChargePoint", MESH_ONLY),
    (CHARGE_POINTS, "ListUnknownChargePoints", OPERATOR_READ),
    (CHARGE_POINTS, "PutIdToken", OPERATOR_WRITE),
    (CHARGE_POINTS, "ListIdTokens", OPERATOR_READ),
    (CHARGE_POINTS, "AuthorizeIdToken", TOKEN_CHECK),
    (TELEMETRY, "Connect", REPORTERS),
    // REQ MON-8: what piles reported of their links, for the daily check.
    (TELEMETRY, "ListLinkStates", READ),
    // The raw log and pile commands are for mesh components only.
    (TELEMETRY, "ReadLog", MESH_ONLY),
    (TELEMETRY, "SendPileCommand", MESH_ONLY),
    // The outcome of a command: the operator's staff and platform, and the mesh.
    (TELEMETRY, "GetPileCommand", OPERATOR_READ),
    (REGULATOR_REGISTRY, "ListStations", REGULATOR_VIEW),
    // REQ MON-1: the live status, for the regulator of the area and the operator's own
    // platform and staff (the service scopes each to what it may see).
    // REQ SVC-2: which connectors are free is everyone's to know, too.
    (REGULATOR_STATUS, "GetStationStatus", PUBLIC_STATUS),
    (REGULATOR_STATUS, "WatchStatusChanges", STATUS_VIEW),
    (REGULATOR_STATUS, "GetStationStats", REGULATOR_VIEW),
    (REGULATOR_STATUS, "GetTrialOperationReport", REGULATOR_VIEW),
    (REGULATOR_ORDERS, "ListChargeOrders", REGULATOR_VIEW),
    (REGULATOR_KPIS, "GetKpiReport", REGULATOR_VIEW),
    (REPORTING, "ListStatusHistory", READ),
    // The operator's figures, for its own staff and platform (REQ EVAL-1).
    (REPORTING, "GetKpiReport", OPERATOR_READ),
    // REQ FAULT-8, DEF-5, EVAL-1: the periodic analyses and the yearly self-evaluation.
    (REPORTING, "GetFaultAnalysis", OPERATOR_READ),
    (REPORTING, "GetDefectStatistics", OPERATOR_READ),
    (REPORTING, "GetSelfEvaluation", OPERATOR_READ),
    (REPORTING, "ExportReport", OPERATOR_READ),
    // REQ MON-9: the monitor declares an exemption and a manager decides it.
    (
        REPORTING,
        "DeclareExemption",
        staff_of(&[MONITOR, OM_MANAGER]),
    ),
    (REPORTING, "DecideExemption", staff_of(&[OM_MANAGER])),
    (REPORTING, "ListExemptions", OPERATOR_READ),
    (REPORTING, "ListParkedPushes", RECORD_PURGE),
    (
        DISPATCH,
        "CreateStaffMember",
        staff_of(&[OM_MANAGER, STATION_MASTER, PLATFORM_ADMIN]),
    ),
    (DISPATCH, "ListStaffMembers", OPERATOR_READ),
    // REQ STAFF-2: trainings are recorded by management and the safety officer.
    (
        DISPATCH,
        "RecordTraining",
        staff_of(&[OM_MANAGER, STATION_MASTER, SAFETY_OFFICER, PLATFORM_ADMIN]),
    ),
    // REQ FAULT-4: patrol staff and the phone desk open orders by hand.
    (
        DISPATCH,
        "CreateWorkOrder",
        staff_of(&[
            MONITOR,
            REPAIRER,
            STATION_MASTER,
            OM_MANAGER,
            COMPLAINT_HANDLER,
        ]),
    ),
    (DISPATCH, "GetWorkOrder", OPERATOR_READ),
    (DISPATCH, "ListWorkOrders", OPERATOR_READ),
    (
        DISPATCH,
        "DispatchWorkOrder",
        staff_of(&[MONITOR, STATION_MASTER, OM_MANAGER]),
    ),
    (DISPATCH, "CheckInWorkOrder", staff_of(&[REPAIRER])),
    (DISPATCH, "ResolveWorkOrder", staff_of(&[REPAIRER])),
    // REQ FAULT-8: the monitor confirms the fault is cleared.
    (DISPATCH, "ConfirmWorkOrder", staff_of(&[MONITOR])),
    // REQ MON-4: the monitor requests suspension.
    (DISPATCH, "RequestSuspension", staff_of(&[MONITOR])),
    // REQ DEF-2: whoever finds a defect registers it; O&M eliminates; management accepts (DEF-4).
    (
        DISPATCH,
        "RegisterDefect",
        staff_of(&[
            MONITOR,
            REPAIRER,
            STATION_MASTER,
            SAFETY_OFFICER,
            OM_MANAGER,
        ]),
    ),
    (
        DISPATCH,
        "EliminateDefect",
        staff_of(&[REPAIRER, STATION_MASTER, OM_MANAGER]),
    ),
    (
        DISPATCH,
        "AcceptDefect",
        staff_of(&[STATION_MASTER, OM_MANAGER]),
    ),
    (DISPATCH, "ListDefects", OPERATOR_READ),
    (DISPATCH, "CheckPileAvailability", OPERATOR_READ),
    // REQ MAINT-1: O&M drafts, an O&M manager approves.
    (
        DISPATCH,
        "CreateMaintenancePlan",
        staff_of(&[REPAIRER, STATION_MASTER, OM_MANAGER]),
    ),
    (
        DISPATCH,
        "UpdateMaintenancePlan",
        staff_of(&[REPAIRER, STATION_MASTER, OM_MANAGER]),
    ),
    (DISPATCH, "ApproveMaintenancePlan", staff_of(&[OM_MANAGER])),
    (DISPATCH, "ListMaintenancePlans", OPERATOR_READ),
    // REQ PATROL-2: the monitor or station master records a trigger.
    (
        DISPATCH,
        "RecordPatrolTrigger",
        staff_of(&[MONITOR, STATION_MASTER, SAFETY_OFFICER, OM_MANAGER]),
    ),
    (DISPATCH, "ListPatrols", OPERATOR_READ),
    (
        DISPATCH,
        "SchedulePatrol",
        staff_of(&[MONITOR, STATION_MASTER, OM_MANAGER]),
    ),
    // REQ PATROL-1: patrol plans are kept by the station master and O&M.
    (
        DISPATCH,
        "CreatePatrolSchedule",
        staff_of(&[STATION_MASTER, OM_MANAGER]),
    ),
    (DISPATCH, "ListPatrolSchedules", OPERATOR_READ),
    (
        DISPATCH,
        "StopPatrolSchedule",
        staff_of(&[STATION_MASTER, OM_MANAGER]),
    ),
    (
        DISPATCH,
        "CompletePatrol",
        staff_of(&[REPAIRER, MONITOR, STATION_MASTER, SAFETY_OFFICER]),
    ),
    // REQ EMERG-1: whoever is first on the scene opens and advances an incident; the station
    // master, safety officer or O&M management closes it with the report.
    (
        DISPATCH,
        "OpenIncident",
        staff_of(&[
            MONITOR,
            REPAIRER,
            STATION_MASTER,
            SAFETY_OFFICER,
            OM_MANAGER,
        ]),
    ),
    (
        DISPATCH,
        "RecordIncidentStep",
        staff_of(&[
            MONITOR,
            REPAIRER,
            STATION_MASTER,
            SAFETY_OFFICER,
            OM_MANAGER,
        ]),
    ),
    (
        DISPATCH,
        "CloseIncident",
        staff_of(&[STATION_MASTER, SAFETY_OFFICER, OM_MANAGER]),
    ),
    (DISPATCH, "ListIncidents", OPERATOR_READ),
    // REQ REC-1: whoever works at a station writes its logbook.
    (
        DISPATCH,
        "RecordWorkLog",
        staff_of(&[
            MONITOR,
            REPAIRER,
            STATION_MASTER,
            SAFETY_OFFICER,
            OM_MANAGER,
        ]),
    ),
    (DISPATCH, "ListWorkLogs", OPERATOR_READ),
    (
        DISPATCH,
        "RecordShiftHandover",
        staff_of(&[
            MONITOR,
            REPAIRER,
            STATION_MASTER,
            SAFETY_OFFICER,
            OM_MANAGER,
        ]),
    ),
    (DISPATCH, "ListShiftHandovers", OPERATOR_READ),
    // REQ MON-7, MON-8: the monitor's daily checks.
    (
        DISPATCH,
        "RegisterMonitoringEquipment",
        staff_of(&[MONITOR, STATION_MASTER, OM_MANAGER]),
    ),
    (DISPATCH, "RecordDailyCheck", staff_of(&[MONITOR])),
    (DISPATCH, "GetDailyCheckStatus", OPERATOR_READ),
    (DISPATCH, "GetMonitoringEquipment", OPERATOR_READ),
    (DISPATCH, "GetMonitorView", OPERATOR_READ),
    (
        DISPATCH,
        "RecordMaintenanceCompletion",
        staff_of(&[REPAIRER, STATION_MASTER, OM_MANAGER]),
    ),
    (DISPATCH, "GetMaintenanceCompliance", OPERATOR_READ),
    // REQ SAFE-1, EMERG-2: the safety officer keeps the plans and the drills.
    (
        DISPATCH,
        "CreateEmergencyPlan",
        staff_of(&[SAFETY_OFFICER, STATION_MASTER, OM_MANAGER]),
    ),
    (
        DISPATCH,
        "RecordDrill",
        staff_of(&[SAFETY_OFFICER, STATION_MASTER, OM_MANAGER]),
    ),
    (DISPATCH, "GetEmergencyReadiness", OPERATOR_READ),
    // REQ MON-5: the monitor requests resumption promptly.
    (DISPATCH, "RequestResumption", staff_of(&[MONITOR])),
    // REQ STAFF-1, BASE-4: the station master and management staff the posts.
    (
        DISPATCH,
        "AssignPost",
        staff_of(&[STATION_MASTER, OM_MANAGER]),
    ),
    (DISPATCH, "GetStationStaffing", OPERATOR_READ),
    (METERING, "ReportChargeOrder", ORDER_REPORTERS),
    // Platforms start sessions for their users; staff do not.
    (METERING, "StartCharge", ORDER_REPORTERS),
    (METERING, "GetChargeOrder", ORDERS_READ),
    (METERING, "ListChargeOrders", ORDERS_READ),
    // REQ MON-9: the monitor verifies and corrects abnormal transactions.
    (
        METERING,
        "CorrectChargeOrder",
        staff_of(&[MONITOR, OM_MANAGER]),
    ),
    (METERING, "ReconcileChargeOrders", OPERATOR_READ),
    // REQ MON-9: the complaint department (or its service) raises a customer's dispute.
    (
        METERING,
        "DisputeChargeOrder",
        staff_of(&[COMPLAINT_HANDLER, MONITOR, OM_MANAGER]),
    ),
    // REQ CMP-2: the desk, the monitor and the station take complaints; the operator's app
    // (its platform certificate) too.
    // A driver files one from the station's public page, without a credential (REQ CMP-2).
    (
        COMPLAINTS,
        "SubmitComplaint",
        Rule {
            kinds: &[Operator, Service, PrincipalKind::Public],
            staff: Some(&[COMPLAINT_HANDLER, MONITOR, STATION_MASTER, OM_MANAGER]),
        },
    ),
    (COMPLAINTS, "GetComplaint", OPERATOR_READ),
    (COMPLAINTS, "ListComplaints", OPERATOR_READ),
    // REQ CMP-4: the complaint department handles them.
    (
        COMPLAINTS,
        "AcknowledgeComplaint",
        staff_of(&[COMPLAINT_HANDLER, OM_MANAGER]),
    ),
    (
        COMPLAINTS,
        "InvestigateComplaint",
        staff_of(&[COMPLAINT_HANDLER, OM_MANAGER]),
    ),
    (
        COMPLAINTS,
        "PromiseResolution",
        staff_of(&[COMPLAINT_HANDLER, OM_MANAGER]),
    ),
    (
        COMPLAINTS,
        "ResolveComplaint",
        staff_of(&[COMPLAINT_HANDLER, OM_MANAGER]),
    ),
    (
        COMPLAINTS,
        "RevisitComplaint",
        staff_of(&[COMPLAINT_HANDLER]),
    ),
    (DISPATCH_RECORDS, "DeleteRecord", RECORD_DELETE),
    (DISPATCH_RECORDS, "MarkRecordImportant", RECORD_MARK),
    (DISPATCH_RECORDS, "PurgeExpiredRecords", RECORD_PURGE),
    (METERING_RECORDS, "DeleteRecord", RECORD_DELETE),
    (METERING_RECORDS, "MarkRecordImportant", RECORD_MARK),
    (METERING_RECORDS, "PurgeExpiredRecords", RECORD_PURGE),
    (COMPLAINTS_RECORDS, "DeleteRecord", RECORD_DELETE),
    (COMPLAINTS_RECORDS, "MarkRecordImportant", RECORD_MARK),
    (COMPLAINTS_RECORDS, "PurgeExpiredRecords", RECORD_PURGE),
    (ASSET_RECORDS, "DeleteRecord", RECORD_DELETE),
    (ASSET_RECORDS, "MarkRecordImportant", RECORD_MARK),
    (ASSET_RECORDS, "PurgeExpiredRecords", RECORD_PURGE),
    (TELEMETRY_RECORDS, "DeleteRecord", RECORD_DELETE),
    (TELEMETRY_RECORDS, "MarkRecordImportant", RECORD_MARK),
    (TELEMETRY_RECORDS, "PurgeExpiredRecords", RECORD_PURGE),
    (REPORTING_RECORDS, "DeleteRecord", RECORD_DELETE),
    (REPORTING_RECORDS, "MarkRecordImportant", RECORD_MARK),
    (REPORTING_RECORDS, "PurgeExpiredRecords", RECORD_PURGE),
    (
        COMPLAINTS,
        "ArchiveComplaint",
        staff_of(&[COMPLAINT_HANDLER, OM_MANAGER]),
    ),
    // REQ EVAL-2: the desk records survey answers (the operator's app too); anyone of the
    // operator reads the figures.
    (
        COMPLAINTS,
        "RecordSurveyAnswer",
        staff_of(&[COMPLAINT_HANDLER, OM_MANAGER]),
    ),
    (COMPLAINTS, "GetSatisfaction", OPERATOR_READ),
    // REQ EVAL-3: the complaint department opens corrective actions, whoever owns one records
    // it done, and management judges whether it worked.
    (
        COMPLAINTS,
        "OpenCorrectiveAction",
        staff_of(&[COMPLAINT_HANDLER, OM_MANAGER]),
    ),
    (COMPLAINTS, "GetCorrectiveAction", OPERATOR_READ),
    (COMPLAINTS, "ListCorrectiveActions", OPERATOR_READ),
    (
        COMPLAINTS,
        "ImplementCorrectiveAction",
        staff_of(&[
            COMPLAINT_HANDLER,
            OM_MANAGER,
            STATION_MASTER,
            MONITOR,
            REPAIRER,
        ]),
    ),
    (COMPLAINTS, "CheckCorrectiveAction", staff_of(&[OM_MANAGER])),
];

/// The rule of a request path such as `/chargemesh.asset.v1.AssetService/GetStation`.
pub fn rule_for(path: &str) -> Option<Rule> {
    POLICY
        .iter()
        .find(|(service, method, _)| path.strip_prefix(service) == Some(method))
        .map(|(_, _, rule)| *rule)
}

/// Calls that stay open as long as their client wants: a pile's telemetry stream, a regulator's
/// watch. A draining gateway ends them so their clients reconnect to another replica.
const LONG_LIVED: &[&str] = &[
    "/chargemesh.telemetry.v1.TelemetryService/Connect",
    "/chargemesh.regulator.v2.StatusService/WatchStatusChanges",
];

/// Whether a path is a long-lived stream (see [`LONG_LIVED`]).
pub fn is_long_lived(path: &str) -> bool {
    LONG_LIVED.contains(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// The paths of the protos' methods that `keep` selects.
    fn methods(keep: impl Fn(&prost_types::MethodDescriptorProto) -> bool) -> Vec<String> {
        let set = prost_types::FileDescriptorSet::decode(chargemesh_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptors");
        let mut paths = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in service.method.iter().filter(|m| keep(m)) {
                    paths.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        paths.sort();
        paths
    }

    #[test]
    fn every_routed_rpc_in_the_protos_has_a_rule_and_every_rule_an_rpc() {
        let paths = methods(|_| true);
        for path in paths
            .iter()
            .filter(|p| crate::routes::component_of(p).is_some())
        {
            assert!(rule_for(path).is_some(), "no policy for {path}");
        }
        for (service, method, _) in POLICY {
            let path = format!("{service}{method}");
            assert!(paths.contains(&path), "policy for unknown {path}");
        }
    }

    #[test]
    fn every_server_stream_in_the_protos_is_long_lived_and_nothing_else() {
        let streams = methods(|m| m.server_streaming());
        let mut listed: Vec<String> = LONG_LIVED.iter().map(|p| p.to_string()).collect();
        listed.sort();
        assert_eq!(streams, listed);
        assert!(!is_long_lived(
            "/chargemesh.asset.v1.AssetService/GetStation"
        ));
    }

    #[test]
    fn netsec_1_regulators_read_but_never_write() {
        let regulator = Principal::Regulator {
            area_code: "330600".into(),
        };
        assert!(
            rule_for("/chargemesh.asset.v1.AssetService/ListStations")
                .is_some_and(|r| r.allows(&regulator))
        );
        assert!(
            !rule_for("/chargemesh.asset.v1.AssetService/CreateStation")
                .is_some_and(|r| r.allows(&regulator))
        );
        assert!(rule_for("/chargemesh.asset.v1.AssetService/Nope").is_none());
    }

    #[test]
    fn mon_4_a_monitor_may_suspend_but_not_retire() {
        let monitor = Principal::Staff {
            subject: "m".into(),
            operator_id: Some("OP".into()),
            roles: vec![roles::MONITOR.into()],
        };
        assert!(
            rule_for("/chargemesh.asset.v1.AssetService/SuspendPile")
                .is_some_and(|r| r.allows(&monitor))
        );
        assert!(
            !rule_for("/chargemesh.asset.v1.AssetService/RetirePile")
                .is_some_and(|r| r.allows(&monitor))
        );
        assert!(
            !rule_for("/chargemesh.asset.v1.AssetService/CreatePile")
                .is_some_and(|r| r.allows(&monitor))
        );
    }
}
