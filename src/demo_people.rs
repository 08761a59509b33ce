//! The demo operator's people: the repair crew dispatch knows (REQ FAULT-1: a crew needs a
//! valid electrician certificate and training), and the persons the console's development
//! sign-in offers, one per post of the standard (REQ STAFF-1).

use std::net::SocketAddr;

use anyhow::Context as _;
use tonic::Code;

use chargemesh_console::ConsoleConfig;
use chargemesh_console::config::{DemoPerson, DevSignIn};
use chargemesh_kit::tls::{self, TlsFiles};
use chargemesh_proto::dispatch::v1 as pb;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;

use crate::pki::{self, DEMO_OPERATOR_ID, PkiDir};

/// The demo repairers: (staff id, name).
pub const DEMO_REPAIRERS: [(&str, &str); 2] = [("R-001", "李维修"), ("R-002", "孙维修")];

/// Where `up` serves the console.
pub const DEMO_CONSOLE_LISTEN: &str = "127.0.0.1:7446";

/// The persons of the development sign-in: a monitor, a repairer (their subject is their staff
/// id, so their check-ins are theirs), a station master, a complaint handler and an O&M manager.
pub fn people() -> Vec<DemoPerson> {
    let person = |subject: &str, name: &str, role: &str| DemoPerson {
        subject: subject.into(),
        name: name.into(),
        operator_id: DEMO_OPERATOR_ID.into(),
        roles: vec![role.into()],
    };
    vec![
        person("mo-wang", "王监控", "monitor"),
        person(DEMO_REPAIRERS[0].0, DEMO_REPAIRERS[0].1, "repairer"),
        person("sm-zhang", "张站长", "station_master"),
        person("cs-chen", "陈客服", "complaint_handler"),
        person("om-zhao", "赵经理", "om_manager"),
    ]
}

/// The console of `chargemesh up`: plain HTTP on the loopback address, calling the gateway at
/// `gateway`, with the development sign-in of the development PKI's staff-token key.
pub fn console(listen: &str, gateway: SocketAddr, pki: &PkiDir) -> ConsoleConfig {
    ConsoleConfig {
        listen: listen.into(),
        gateway: format!("https://127.0.0.1:{}", gateway.port()),
        ca_file: pki.ca(),
        secure_cookies: false,
        dev_signin: Some(DevSignIn {
            jwt_key_file: pki.jwt_key(),
            kid: pki::JWT_KID.into(),
            issuer: pki::JWT_ISSUER.into(),
            audience: pki::JWT_AUDIENCE.into(),
            people: people(),
        }),
        ..ConsoleConfig::default()
    }
}

/// Registers the demo repairers with dispatch, as the operator; those already there are kept.
pub async fn seed_staff(gateway: SocketAddr, operator_files: &TlsFiles) -> anyhow::Result<()> {
    let config = std::sync::Arc::new(tls::client_config(operator_files)?);
    let channel = tls::channel(&format!("https://127.0.0.1:{}", gateway.port()), config)?;
    let mut dispatch = DispatchServiceClient::new(channel);
    let today = chrono::Utc::now().date_naive();
    for (staff_id, name) in DEMO_REPAIRERS {
        let created = dispatch
            .create_staff_member(pb::CreateStaffMemberRequest {
                staff_member: Some(pb::StaffMember {
                    operator_id: DEMO_OPERATOR_ID.into(),
                    staff_id: staff_id.into(),
                    name: name.into(),
                    employer: pb::Employer::Own as i32,
                    electrician_certificate_until: (today + chrono::Duration::days(700))
                        .to_string(),
                    qualified_until: (today + chrono::Duration::days(300)).to_string(),
                    ..Default::default()
                }),
            })
            .await;
        match created {
            Ok(_) => {}
            Err(status) if status.code() == Code::AlreadyExists => {}
            Err(status) => {
                return Err(status).with_context(|| format!("registering repairer {staff_id}"));
            }
        }
    }
    Ok(())
}
