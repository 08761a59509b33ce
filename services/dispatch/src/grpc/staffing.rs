//! Staff: trainings and posts (REQ STAFF-1, STAFF-2, BASE-4).

use super::*;

impl DispatchApi {
    pub(super) async fn record_training_(
        &self,
        p: &Principal,
        r: pb::RecordTrainingRequest,
    ) -> Result<pb::RecordTrainingResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let t = r
            .training
            .ok_or_else(|| Error::bad_field("training", "must be set"))?;
        let today = china_date(self.engine.clock.now());
        let required = |field: &str, value: &str| {
            date(field, value)?.ok_or_else(|| Error::bad_field(field, "is required"))
        };
        let training = Training::new(
            &t.course,
            required("training.completed_on", &t.completed_on)?,
            required("training.valid_until", &t.valid_until)?,
            &t.record_ref,
            today,
        )
        .map_err(|e| e.within("training"))?;
        let (mut record, version) = self
            .engine
            .store
            .staff_member(&op, r.staff_id.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("staff member {}", r.staff_id.trim())))?;
        record.member.record_training(training);
        self.engine.store.update_staff(&record, version).await?;
        Ok(pb::RecordTrainingResponse {
            staff_member: Some(staff_to_pb(&record, today)),
        })
    }

    pub(super) async fn assign_post_(
        &self,
        p: &Principal,
        r: pb::AssignPostRequest,
    ) -> Result<pb::AssignPostResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        let post = post_of(r.post)?;
        self.engine.station(&op, station).await?;
        let (member, _) = self
            .engine
            .store
            .staff_member(&op, r.staff_id.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("staff member {}", r.staff_id.trim())))?;
        let now = self.engine.clock.now();
        let existing = self.engine.store.doc(STAFFING, &op, station).await?;
        let (mut staffing, version) = match existing {
            Some((doc, version)) => (from_doc::<StationStaffing>(doc)?, Some(version)),
            None => (StationStaffing::new(&op, station, r.attended), None),
        };
        staffing.attended = r.attended;
        staffing.assign(post, &member.member, &r.procedure_ref, china_date(now))?;
        match version {
            Some(v) => {
                self.engine
                    .store
                    .update_doc(
                        DocKey {
                            kind: STAFFING,
                            operator_id: &op,
                            id: station,
                        },
                        true,
                        &to_doc(&staffing)?,
                        v,
                        now,
                        &[],
                    )
                    .await?
            }
            None => {
                self.engine
                    .store
                    .insert_doc(
                        DocKey {
                            kind: STAFFING,
                            operator_id: &op,
                            id: station,
                        },
                        station,
                        true,
                        &to_doc(&staffing)?,
                        now,
                        &[],
                    )
                    .await?
            }
        }
        let (assignments, missing_posts) = staffing_to_pb(&staffing);
        Ok(pb::AssignPostResponse {
            assignments,
            missing_posts,
        })
    }

    pub(super) async fn get_station_staffing_(
        &self,
        p: &Principal,
        r: pb::GetStationStaffingRequest,
    ) -> Result<pb::GetStationStaffingResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        let staffing = match self.engine.store.doc(STAFFING, &op, station).await? {
            Some((doc, _)) => from_doc::<StationStaffing>(doc)?,
            None => {
                self.engine.station(&op, station).await?;
                StationStaffing::new(&op, station, true)
            }
        };
        let (assignments, missing_posts) = staffing_to_pb(&staffing);
        Ok(pb::GetStationStaffingResponse {
            attended: staffing.attended,
            assignments,
            missing_posts,
        })
    }
}
