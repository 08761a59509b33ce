//! Survey answers and the monthly satisfaction figures (REQ EVAL-2).

use chargemesh_kit::time::{from_timestamp, to_timestamp};
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::complaints::v1 as pb;

use super::{ComplaintsApi, operator_for};
use crate::domain::satisfaction::{self, Answer, Scores, Source, SurveyInput};

fn answer_to_pb(a: &Answer) -> pb::SurveyAnswer {
    pb::SurveyAnswer {
        operator_id: a.operator_id.clone(),
        answer_id: a.answer_id.clone(),
        survey: a.survey.clone(),
        station_id: a.station_id.clone().unwrap_or_default(),
        respondent_contact: a.respondent.clone(),
        score: u32::from(a.score),
        comment: a.comment.clone(),
        answer_time: Some(to_timestamp(a.answered_at)),
    }
}

fn tally_to_pb(s: Scores) -> pb::ScoreTally {
    pb::ScoreTally {
        answers: u32::try_from(s.answers).unwrap_or(u32::MAX),
        mean_score: s.mean(),
        satisfied: u32::try_from(s.satisfied).unwrap_or(u32::MAX),
    }
}

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A resend under a used id is the same answer when it says the same; its time only counts when
/// the caller gave one.
fn same_answer(kept: &Answer, sent: &Answer, timed: bool) -> bool {
    kept.source == Source::Survey
        && kept.survey == sent.survey
        && kept.station_id == sent.station_id
        && kept.respondent == sent.respondent
        && kept.score == sent.score
        && kept.comment == sent.comment
        && (!timed || kept.answered_at == sent.answered_at)
}

impl ComplaintsApi {
    pub(super) async fn record_survey_answer_(
        &self,
        p: &Principal,
        r: pb::RecordSurveyAnswerRequest,
    ) -> Result<pb::RecordSurveyAnswerResponse, Error> {
        let input = r
            .answer
            .ok_or_else(|| Error::bad_field("answer", "must be set"))?;
        let op = operator_for(p, &input.operator_id)?;
        let answered_at = input.answer_time.as_ref().and_then(from_timestamp);
        if input.answer_time.is_some() && answered_at.is_none() {
            return Err(Error::bad_field(
                "answer.answer_time",
                "is not a valid time",
            ));
        }
        let sent = Answer::survey(
            SurveyInput {
                operator_id: op,
                answer_id: input.answer_id,
                survey: input.survey,
                station_id: input.station_id,
                respondent: input.respondent_contact,
                score: input.score,
                comment: input.comment,
                answered_at,
            },
            || format!("SA-{}", uuid::Uuid::now_v7().simple()),
            &p.to_string(),
            self.now(),
        )
        .map_err(|e| e.within("answer"))?;
        let kept = self.engine.store.record_answer(&sent).await?;
        if !same_answer(&kept, &sent, answered_at.is_some()) {
            return Err(Error::AlreadyExists(format!(
                "another answer under answer_id {}",
                sent.answer_id
            )));
        }
        Ok(pb::RecordSurveyAnswerResponse {
            answer: Some(answer_to_pb(&kept)),
        })
    }

    pub(super) async fn get_satisfaction_(
        &self,
        p: &Principal,
        r: pb::GetSatisfactionRequest,
    ) -> Result<pb::GetSatisfactionResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let (from, to) = satisfaction::month_span(&r.from_month, &r.to_month)?;
        let station = r.station_id.trim();
        let tallies = self.engine.store.tallies(&op, &from, &to).await?;
        let rows = satisfaction::aggregate(&tallies)
            .into_iter()
            .filter(|row| match row.station_id.as_deref() {
                None => true,
                Some(s) => station.is_empty() || s == station,
            })
            .map(|row| pb::SatisfactionRow {
                overall: Some(tally_to_pb(row.overall())),
                month: row.month,
                station_id: row.station_id.unwrap_or_default(),
                revisits: Some(tally_to_pb(row.revisits)),
                surveys: Some(tally_to_pb(row.surveys)),
                complaints: count(row.complaints),
                praise: count(row.praise),
                suggestions: count(row.suggestions),
            })
            .collect();
        Ok(pb::GetSatisfactionResponse { rows })
    }
}
