//! Corrective actions (REQ EVAL-3): opened from complaints, implemented, checked for effect.

use chrono::{DateTime, Utc};

use chargemesh_kit::time::{from_timestamp, to_timestamp};
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::complaints::v1 as pb;

use super::{ComplaintsApi, breach_to_pb, operator_for};
use crate::domain::action::{ActionState, CorrectiveAction, Opening};
use crate::store::ActionFilter;
use chargemesh_kit::paging::Keyset;

fn state_to_pb(s: ActionState) -> i32 {
    (match s {
        ActionState::Open => pb::CorrectiveActionState::Open,
        ActionState::Implemented => pb::CorrectiveActionState::Implemented,
        ActionState::Effective => pb::CorrectiveActionState::Effective,
    }) as i32
}

fn to_pb(a: &CorrectiveAction, recurrences: u32, now: DateTime<Utc>) -> pb::CorrectiveAction {
    let round = a.current();
    pb::CorrectiveAction {
        operator_id: a.operator_id.clone(),
        action_id: a.action_id.clone(),
        complaint_ids: a.complaint_ids.clone(),
        problem: a.problem.clone(),
        plan: round.plan.clone(),
        owner: a.owner.clone(),
        due_time: Some(to_timestamp(round.due)),
        state: state_to_pb(a.state),
        open_time: Some(to_timestamp(a.opened_at)),
        round: u32::try_from(a.rounds.len()).unwrap_or(u32::MAX),
        steps: a
            .steps
            .iter()
            .map(|s| pb::CorrectiveActionStep {
                state: state_to_pb(s.state),
                step_time: Some(to_timestamp(s.at)),
                by: s.by.clone(),
                note: s.note.clone(),
            })
            .collect(),
        breaches: a.breaches(now).iter().map(breach_to_pb).collect(),
        recurrences,
        station_ids: a.station_ids.clone(),
    }
}

impl ComplaintsApi {
    /// The action as shown: with the recurrences since it was last implemented (REQ EVAL-3).
    async fn shown(&self, a: &CorrectiveAction) -> Result<pb::CorrectiveAction, Error> {
        let since = self
            .engine
            .store
            .complaints_since(&a.operator_id, a.watching_since())
            .await?;
        Ok(to_pb(a, a.recurrences(&since), self.now()))
    }

    pub(super) async fn open_action(
        &self,
        p: &Principal,
        r: pb::OpenCorrectiveActionRequest,
    ) -> Result<pb::CorrectiveAction, Error> {
        let input = r
            .action
            .ok_or_else(|| Error::bad_field("action", "must be set"))?;
        let op = operator_for(p, &input.operator_id)?;
        let due = input
            .due_time
            .as_ref()
            .and_then(from_timestamp)
            .ok_or_else(|| Error::invalid("action.due_time", "EVAL-3", "a deadline is set"))?;
        let mut ids: Vec<&str> = input.complaint_ids.iter().map(|s| s.trim()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut complaints = Vec::with_capacity(ids.len());
        for id in ids.into_iter().filter(|id| !id.is_empty()) {
            let (c, _) = self.engine.store.complaint(&op, id).await?.ok_or_else(|| {
                Error::bad_field(
                    "action.complaint_ids",
                    format!("complaint {id} is not one of the operator's"),
                )
            })?;
            complaints.push(c);
        }
        let now = self.now();
        let action = CorrectiveAction::open(
            format!("CA-{}", uuid::Uuid::now_v7().simple()),
            Opening {
                operator_id: op,
                complaints,
                problem: input.problem,
                plan: input.plan,
                owner: input.owner,
                due,
            },
            &p.to_string(),
            now,
        )
        .map_err(|e| e.within("action"))?;
        // REQ EVAL-3: the deadline is a durable clock from the start.
        self.engine
            .store
            .create_action(&action, &[action.clock()])
            .await?;
        self.shown(&action).await
    }

    pub(super) async fn get_action(
        &self,
        p: &Principal,
        operator_id: &str,
        action_id: &str,
    ) -> Result<pb::CorrectiveAction, Error> {
        let op = operator_for(p, operator_id)?;
        let id = action_id.trim();
        let (action, _) = self
            .engine
            .store
            .action(&op, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("corrective action {id}")))?;
        self.shown(&action).await
    }

    pub(super) async fn list_actions(
        &self,
        p: &Principal,
        r: pb::ListCorrectiveActionsRequest,
    ) -> Result<pb::ListCorrectiveActionsResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let page = Keyset::from_request(r.page_size, &r.page_token)?;
        let filter = ActionFilter {
            complaint_id: Some(r.complaint_id.trim()).filter(|c| !c.is_empty()),
            include_closed: r.include_closed,
        };
        let listed = page.page(self.engine.store.actions(&op, filter, &page).await?);
        // One read of the complaints since the earliest watch on the page serves every action's
        // recurrences (REQ EVAL-3), rather than one read per action.
        let since = match listed.items.iter().map(|a| a.watching_since()).min() {
            Some(since) => self.engine.store.complaints_since(&op, since).await?,
            None => Vec::new(),
        };
        let now = self.now();
        Ok(pb::ListCorrectiveActionsResponse {
            actions: listed
                .items
                .iter()
                .map(|a| to_pb(a, a.recurrences(&since), now))
                .collect(),
            next_page_token: listed.next_page_token,
        })
    }

    /// Loads an action of the caller's operator, applies a step and writes it back with the
    /// clock of a new round, if one began.
    pub(super) async fn action_step(
        &self,
        p: &Principal,
        operator_id: &str,
        action_id: &str,
        apply: impl FnOnce(&mut CorrectiveAction, &str, DateTime<Utc>) -> Result<(), Error>,
    ) -> Result<pb::CorrectiveAction, Error> {
        let op = operator_for(p, operator_id)?;
        let id = action_id.trim();
        let (mut action, version) = self
            .engine
            .store
            .action(&op, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("corrective action {id}")))?;
        let rounds = action.rounds.len();
        apply(&mut action, &p.to_string(), self.now())?;
        let clocks: Vec<_> = if action.rounds.len() > rounds {
            vec![action.clock()]
        } else {
            Vec::new()
        };
        self.engine
            .store
            .update_action(&action, version, &clocks)
            .await?;
        self.shown(&action).await
    }
}
