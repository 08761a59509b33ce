//! A pile's lifecycle reaches the pile itself: a suspension (REQ MON-4) and a retirement
//! (MON-6) make it Inoperative, a resumption (MON-5) Operative again, by a ChangeAvailability
//! pile command through the telemetry component, which delivers it on the pile's stream (the
//! OCPP edge turns it into the protocol's ChangeAvailability). The step is written in the
//! transaction of the pile's change (kit::outbox) and carried out until the telemetry component
//! has taken the command; the command's own outcome is then readable there
//! (`GetPileCommand`). Sending the same availability twice has the effect of once.

use chargemesh_kit::outbox::{Step, StepError, StepHandler};
use chargemesh_kit::tls::MeshChannel;
use chargemesh_proto::telemetry::v1 as tpb;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use crate::domain::model::{Pile, PileState};

/// The outbox step kind.
pub const KIND: &str = "pile-availability";

/// The step a saved pile calls for, if any: only lifecycle actions of piles that take commands
/// by a protocol that has availability (OCPP). `version` is the pile's version after the save,
/// which makes the step unique per change.
pub fn step(pile: &Pile, action: &str, version: i64) -> Option<Step> {
    if !matches!(action, "suspend" | "resume" | "retire") || !pile.protocol.is_ocpp() {
        return None;
    }
    let operative = pile.state == PileState::InService;
    let mut step = Step::new(
        KIND,
        &pile.operator_id,
        &format!("{}@{version}", pile.pile_id),
    );
    step.payload =
        serde_json::json!({ "pile_id": pile.pile_id, "operative": operative }).to_string();
    Some(step)
}

/// Sends the availability commands.
#[derive(Debug, Clone)]
pub struct AvailabilitySteps {
    pub telemetry: MeshChannel,
}

#[tonic::async_trait]
impl StepHandler for AvailabilitySteps {
    async fn run(&self, step: &Step) -> Result<(), StepError> {
        #[derive(serde::Deserialize)]
        struct Payload {
            pile_id: String,
            operative: bool,
        }
        let payload: Payload = serde_json::from_str(&step.payload)
            .map_err(|e| StepError::Abandon(format!("an unreadable step: {e}")))?;
        let request = tpb::SendPileCommandRequest {
            operator_id: step.operator_id.clone(),
            command: Some(tpb::PileCommand {
                command_id: String::new(),
                pile_id: payload.pile_id,
                connector_id: String::new(),
                action: Some(tpb::pile_command::Action::ChangeAvailability(
                    tpb::ChangeAvailabilityCommand {
                        operative: payload.operative,
                    },
                )),
            }),
        };
        match TelemetryServiceClient::new(self.telemetry.clone())
            .send_pile_command(request)
            .await
        {
            Ok(response) => {
                tracing::info!(step = %step.step_id, command = %response.into_inner().command_id, "pile availability sent");
                Ok(())
            }
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument
                        | tonic::Code::NotFound
                        | tonic::Code::PermissionDenied
                ) =>
            {
                Err(StepError::Abandon(status.message().to_owned()))
            }
            Err(status) => Err(StepError::Retry(status.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{PileProtocol, PileType};
    use crate::domain::rules::tests::pile;

    fn operative(step: &Step) -> bool {
        serde_json::from_str::<serde_json::Value>(&step.payload).expect("json")["operative"]
            .as_bool()
            .expect("a flag")
    }

    #[test]
    fn mon_4_5_6_a_lifecycle_change_of_an_ocpp_pile_reaches_it_as_availability() {
        let mut p = pile(PileType::Dc);
        p.protocol = PileProtocol::Ocpp16;
        p.state = PileState::Suspended;
        let suspended = step(&p, "suspend", 2).expect("MON-4: inoperative");
        assert!(!operative(&suspended));
        p.state = PileState::InService;
        let resumed = step(&p, "resume", 3).expect("MON-5: operative");
        assert!(operative(&resumed));
        assert_ne!(suspended.step_id, resumed.step_id, "one step per change");
        p.state = PileState::Retired;
        assert!(!operative(
            &step(&p, "retire", 4).expect("MON-6: inoperative for good")
        ));
        assert!(
            step(&p, "update", 5).is_none(),
            "an archive update is not a lifecycle change"
        );
        p.protocol = PileProtocol::Native;
        assert!(
            step(&p, "suspend", 6).is_none(),
            "only OCPP piles take availability"
        );
    }
}
