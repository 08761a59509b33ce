//! Patrols, schedules and their checklists (REQ PATROL-1..4, MON-3).

use super::*;

impl DispatchApi {
    pub(super) async fn record_patrol_trigger_(
        &self,
        p: &Principal,
        r: pb::RecordPatrolTriggerRequest,
    ) -> Result<pb::RecordPatrolTriggerResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let trigger = trigger_of(r.trigger)?;
        let area = r.area_code.trim();
        if area.len() != 6 || !area.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::bad_field(
                "area_code",
                "must be a 6-digit GB/T 2260 area code",
            ));
        }
        let now = self.engine.clock.now();
        let mut patrols = Vec::new();
        // REQ PATROL-2: a special patrol for exactly the stations of the area.
        for (station_id, area_code) in self.engine.stations_in_area(&op, area).await? {
            let patrol = Patrol::special(
                format!("PT-{}", uuid::Uuid::now_v7().simple()),
                &op,
                &station_id,
                &area_code,
                trigger,
                now,
            );
            self.engine.store.insert(&patrol, now).await?;
            patrols.push(patrol_to_pb(&patrol, now));
        }
        Ok(pb::RecordPatrolTriggerResponse { patrols })
    }

    pub(super) async fn schedule_patrol_(
        &self,
        p: &Principal,
        r: pb::SchedulePatrolRequest,
    ) -> Result<pb::SchedulePatrolResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        let now = self.engine.clock.now();
        let due = r
            .due_time
            .as_ref()
            .and_then(chargemesh_kit::time::from_timestamp)
            .filter(|due| *due > now)
            .ok_or_else(|| {
                Error::invalid(
                    "due_time",
                    "PATROL-1",
                    "a patrol is scheduled for a time to come",
                )
            })?;
        self.engine.station(&op, station).await?;
        let patrol = Patrol::normal(
            format!("PT-{}", uuid::Uuid::now_v7().simple()),
            &op,
            station,
            "",
            due,
            now,
        );
        self.engine.store.insert(&patrol, now).await?;
        Ok(pb::SchedulePatrolResponse {
            patrol: Some(patrol_to_pb(&patrol, now)),
        })
    }

    pub(super) async fn create_patrol_schedule_(
        &self,
        p: &Principal,
        r: pb::CreatePatrolScheduleRequest,
    ) -> Result<pb::CreatePatrolScheduleResponse, Error> {
        let input = r
            .schedule
            .ok_or_else(|| Error::bad_field("schedule", "must be set"))?;
        let op = operator_for(p, &input.operator_id)?;
        let now = self.engine.clock.now();
        let first_due = input
            .first_due_time
            .as_ref()
            .and_then(chargemesh_kit::time::from_timestamp)
            .ok_or_else(|| Error::bad_field("schedule.first_due_time", "is required"))?;
        let schedule = PatrolSchedule::new(
            format!("PS-{}", uuid::Uuid::now_v7().simple()),
            &op,
            input.station_id.trim(),
            input.every_days,
            first_due,
            now,
        )
        .map_err(|e| e.within("schedule"))?;
        self.engine.station(&op, &schedule.station_id).await?;
        self.engine.start_schedule(&schedule).await?;
        Ok(pb::CreatePatrolScheduleResponse {
            schedule: Some(schedule_to_pb(&schedule, now)),
        })
    }

    pub(super) async fn list_patrol_schedules_(
        &self,
        p: &Principal,
        r: pb::ListPatrolSchedulesRequest,
    ) -> Result<pb::ListPatrolSchedulesResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let page = Keyset::from_request(r.page_size, &r.page_token)?;
        let filter = DocFilter {
            station_id: Some(r.station_id.trim()).filter(|s| !s.is_empty()),
            open_only: false,
        };
        let now = self.engine.clock.now();
        let schedules = page.page(
            self.engine
                .store
                .list::<PatrolSchedule>(&op, filter, &page)
                .await?,
        );
        Ok(pb::ListPatrolSchedulesResponse {
            schedules: schedules
                .items
                .iter()
                .map(|s| schedule_to_pb(s, now))
                .collect(),
            next_page_token: schedules.next_page_token,
        })
    }

    pub(super) async fn stop_patrol_schedule_(
        &self,
        p: &Principal,
        r: pb::StopPatrolScheduleRequest,
    ) -> Result<pb::StopPatrolScheduleResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let id = r.schedule_id.trim();
        let (mut schedule, version) = self
            .engine
            .store
            .load::<PatrolSchedule>(&op, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("patrol schedule {id}")))?;
        let now = self.engine.clock.now();
        schedule.stop(now)?;
        self.engine.store.save(&schedule, version, now).await?;
        Ok(pb::StopPatrolScheduleResponse {
            schedule: Some(schedule_to_pb(&schedule, now)),
        })
    }

    pub(super) async fn complete_patrol_(
        &self,
        p: &Principal,
        r: pb::CompletePatrolRequest,
    ) -> Result<pb::CompletePatrolResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let (mut patrol, version) = self
            .engine
            .store
            .load::<Patrol>(&op, r.patrol_id.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("patrol {}", r.patrol_id.trim())))?;
        let now = self.engine.clock.now();
        let results: Vec<ItemResult> = r
            .results
            .iter()
            .map(|x| ItemResult {
                item: x.item.clone(),
                ok: x.ok,
                note: x.note.clone(),
            })
            .collect();
        let failed = patrol.complete(&results, now)?;
        // Every failed item is a defect. All are checked before any is written, so a bad one
        // refuses the whole report instead of leaving half of it registered.
        let requests: Vec<pb::RegisterDefectRequest> = failed
            .iter()
            .map(|f| {
                let given = r.results.iter().find(|x| x.item == f.item);
                pb::RegisterDefectRequest {
                    operator_id: op.clone(),
                    station_id: patrol.station_id.clone(),
                    pile_id: String::new(),
                    class: given.map_or(0, |g| g.defect_class),
                    description: format!("{}: {}", f.item, f.note.trim()),
                    elimination_plan: given
                        .map(|g| g.elimination_plan.clone())
                        .unwrap_or_default(),
                    maintenance_plan: given
                        .map(|g| g.maintenance_plan.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        for request in &requests {
            let class = match pb::DefectClass::try_from(request.class) {
                Ok(pb::DefectClass::Critical) => DefectClass::Critical,
                Ok(pb::DefectClass::Serious) => DefectClass::Serious,
                Ok(pb::DefectClass::General) => DefectClass::General,
                _ => {
                    return Err(Error::invalid(
                        "results.defect_class",
                        "DEF-1",
                        "a failed item names the class of its defect",
                    ));
                }
            };
            Defect::register(
                NewDefect {
                    defect_id: String::new(),
                    operator_id: op.clone(),
                    station_id: patrol.station_id.clone(),
                    pile_id: None,
                    class,
                    description: request.description.clone(),
                    finder: p.to_string(),
                    elimination_plan: request.elimination_plan.clone(),
                    maintenance_plan: Some(request.maintenance_plan.clone()),
                },
                DefectDeadlines::default(),
                now,
            )?;
        }
        let mut defects = Vec::new();
        for request in requests {
            let mut defect = self.register(p, request).await?;
            let (_, defect_version) = self
                .engine
                .store
                .defect(&op, &defect.defect_id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("defect {}", defect.defect_id)))?;
            defect.found_on_patrol = Some(patrol.patrol_id.clone());
            self.engine
                .store
                .update_defect(&defect, defect_version, now)
                .await?;
            defects.push(defect_to_pb(&defect, now));
        }
        self.engine.store.save(&patrol, version, now).await?;
        Ok(pb::CompletePatrolResponse {
            patrol: Some(patrol_to_pb(&patrol, now)),
            defects,
        })
    }
}
