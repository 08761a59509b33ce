//! A station's logbook: work logs and shift handovers (REQ REC-1, STAFF-1).

use super::*;
use crate::domain::logbook::{NewHandover, NewWorkLog, ShiftHandover, WorkLog};

/// The most open orders and defects a handover lists, each the newest.
const HANDOVER_OPEN_ITEMS: u32 = 500;

fn time_of(
    field: &str,
    at: Option<&prost_types::Timestamp>,
) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    at.and_then(chargemesh_kit::time::from_timestamp)
        .ok_or_else(|| Error::bad_field(field, "must be set to a valid time"))
}

fn work_log_to_pb(l: &WorkLog) -> pb::WorkLog {
    pb::WorkLog {
        operator_id: l.operator_id.clone(),
        log_id: l.log_id.clone(),
        station_id: l.station_id.clone(),
        staff_id: l.staff_id.clone(),
        work: l.work.clone(),
        start_time: Some(to_timestamp(l.started_at)),
        end_time: Some(to_timestamp(l.ended_at)),
        record_time: Some(to_timestamp(l.recorded_at)),
        recorded_by: l.recorded_by.clone(),
    }
}

fn handover_to_pb(h: &ShiftHandover) -> pb::ShiftHandover {
    pb::ShiftHandover {
        operator_id: h.operator_id.clone(),
        handover_id: h.handover_id.clone(),
        station_id: h.station_id.clone(),
        from_staff_id: h.from_staff_id.clone(),
        to_staff_id: h.to_staff_id.clone(),
        handover_time: Some(to_timestamp(h.handed_over_at)),
        notes: h.notes.clone(),
        open_work_order_ids: h.open_work_orders.clone(),
        open_defect_ids: h.open_defects.clone(),
        record_time: Some(to_timestamp(h.recorded_at)),
        recorded_by: h.recorded_by.clone(),
    }
}

impl DispatchApi {
    /// A member of the operator's staff, or NOT_FOUND naming the field.
    async fn staff_id(&self, op: &str, field: &str, id: &str) -> Result<String, Error> {
        let id = id.trim();
        if id.is_empty() {
            return Err(Error::bad_field(field, "must name a member of staff"));
        }
        self.engine
            .store
            .staff_member(op, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("staff member {id} ({field})")))?;
        Ok(id.to_owned())
    }

    pub(super) async fn record_work_log_(
        &self,
        p: &Principal,
        r: pb::RecordWorkLogRequest,
    ) -> Result<pb::RecordWorkLogResponse, Error> {
        let input = r
            .work_log
            .ok_or_else(|| Error::bad_field("work_log", "must be set"))?;
        let op = operator_for(p, &input.operator_id)?;
        let station = input.station_id.trim();
        self.engine.station(&op, station).await?;
        let staff_id = self.staff_id(&op, "staff_id", &input.staff_id).await?;
        let now = self.engine.clock.now();
        let log = WorkLog::record(
            NewWorkLog {
                operator_id: op.clone(),
                log_id: format!("WL-{}", uuid::Uuid::now_v7().simple()),
                station_id: station.to_owned(),
                staff_id,
                work: input.work,
                started_at: time_of("start_time", input.start_time.as_ref())?,
                ended_at: time_of("end_time", input.end_time.as_ref())?,
            },
            &p.to_string(),
            now,
        )?;
        self.engine.store.insert(&log, now).await?;
        Ok(pb::RecordWorkLogResponse {
            work_log: Some(work_log_to_pb(&log)),
        })
    }

    pub(super) async fn list_work_logs_(
        &self,
        p: &Principal,
        r: pb::ListWorkLogsRequest,
    ) -> Result<pb::ListWorkLogsResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let page = Keyset::from_request(r.page_size, &r.page_token)?;
        let filter = DocFilter {
            station_id: Some(r.station_id.trim()).filter(|s| !s.is_empty()),
            open_only: false,
        };
        let logs = page.page(
            self.engine
                .store
                .list::<WorkLog>(&op, filter, &page)
                .await?,
        );
        Ok(pb::ListWorkLogsResponse {
            work_logs: logs.items.iter().map(work_log_to_pb).collect(),
            next_page_token: logs.next_page_token,
        })
    }

    pub(super) async fn record_shift_handover_(
        &self,
        p: &Principal,
        r: pb::RecordShiftHandoverRequest,
    ) -> Result<pb::RecordShiftHandoverResponse, Error> {
        let input = r
            .handover
            .ok_or_else(|| Error::bad_field("handover", "must be set"))?;
        let op = operator_for(p, &input.operator_id)?;
        let station = input.station_id.trim();
        self.engine.station(&op, station).await?;
        let from = self
            .staff_id(&op, "from_staff_id", &input.from_staff_id)
            .await?;
        let to = self
            .staff_id(&op, "to_staff_id", &input.to_staff_id)
            .await?;
        let now = self.engine.clock.now();
        let at = match &input.handover_time {
            Some(ts) => time_of("handover_time", Some(ts))?,
            None => now,
        };
        // What is open at the station as the shift changes hands.
        let newest = Keyset::first(HANDOVER_OPEN_ITEMS);
        let open_orders = OrderFilter {
            station_id: Some(station),
            pile_id: None,
            open_only: true,
        };
        let open_defects = DefectFilter {
            station_id: Some(station),
            pile_id: None,
            open_only: true,
        };
        let orders = (self.engine.store.orders(&op, open_orders, &newest).await?)
            .into_iter()
            .map(|o| o.item.order_id)
            .collect();
        let defects = (self
            .engine
            .store
            .defects(&op, open_defects, &newest)
            .await?)
            .into_iter()
            .map(|d| d.item.defect_id)
            .collect();
        let handover = ShiftHandover::record(
            NewHandover {
                operator_id: op.clone(),
                handover_id: format!("HO-{}", uuid::Uuid::now_v7().simple()),
                station_id: station.to_owned(),
                from_staff_id: from,
                to_staff_id: to,
                handed_over_at: at,
                notes: input.notes,
            },
            orders,
            defects,
            &p.to_string(),
            now,
        )?;
        self.engine.store.insert(&handover, now).await?;
        Ok(pb::RecordShiftHandoverResponse {
            handover: Some(handover_to_pb(&handover)),
        })
    }

    pub(super) async fn list_shift_handovers_(
        &self,
        p: &Principal,
        r: pb::ListShiftHandoversRequest,
    ) -> Result<pb::ListShiftHandoversResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let page = Keyset::from_request(r.page_size, &r.page_token)?;
        let filter = DocFilter {
            station_id: Some(r.station_id.trim()).filter(|s| !s.is_empty()),
            open_only: false,
        };
        let handovers = page.page(
            self.engine
                .store
                .list::<ShiftHandover>(&op, filter, &page)
                .await?,
        );
        Ok(pb::ListShiftHandoversResponse {
            handovers: handovers.items.iter().map(handover_to_pb).collect(),
            next_page_token: handovers.next_page_token,
        })
    }
}
