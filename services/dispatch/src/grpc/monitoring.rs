//! The monitor's daily checks, defects and view (REQ MON-2, MON-7, MON-8, DEF-1..4).

use super::*;

impl DispatchApi {
    pub(super) async fn list_defects_(
        &self,
        p: &Principal,
        r: pb::ListDefectsRequest,
    ) -> Result<pb::ListDefectsResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let page = Keyset::from_request(r.page_size, &r.page_token)?;
        let filter = DefectFilter {
            station_id: Some(r.station_id.trim()).filter(|s| !s.is_empty()),
            pile_id: Some(r.pile_id.trim()).filter(|s| !s.is_empty()),
            open_only: r.open_only,
        };
        let now = self.engine.clock.now();
        let defects = page.page(self.engine.store.defects(&op, filter, &page).await?);
        Ok(pb::ListDefectsResponse {
            defects: defects.items.iter().map(|d| defect_to_pb(d, now)).collect(),
            next_page_token: defects.next_page_token,
        })
    }

    pub(super) async fn register_monitoring_equipment_(
        &self,
        p: &Principal,
        r: pb::RegisterMonitoringEquipmentRequest,
    ) -> Result<pb::RegisterMonitoringEquipmentResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        self.engine.station(&op, station).await?;
        let register = Register {
            cameras: r
                .cameras
                .into_iter()
                .map(|c| Camera {
                    camera_id: c.camera_id,
                    covers: c.covers,
                })
                .collect(),
            links: r
                .links
                .into_iter()
                .map(|l| {
                    if l.iccid.trim().is_empty() {
                        Link::Ethernet { link_id: l.link_id }
                    } else {
                        Link::Sim {
                            link_id: l.link_id,
                            iccid: l.iccid,
                            carrier: l.carrier,
                            traffic_min_mb: l.traffic_min_mb,
                            traffic_max_mb: l.traffic_max_mb,
                        }
                    }
                })
                .collect(),
        };
        let now = self.engine.clock.now();
        match self.engine.store.doc(MONITORING, &op, station).await? {
            Some((_, version)) => {
                self.engine
                    .store
                    .update_doc(
                        DocKey {
                            kind: MONITORING,
                            operator_id: &op,
                            id: station,
                        },
                        true,
                        &to_doc(&register)?,
                        version,
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
                            kind: MONITORING,
                            operator_id: &op,
                            id: station,
                        },
                        station,
                        true,
                        &to_doc(&register)?,
                        now,
                        &[],
                    )
                    .await?
            }
        }
        Ok(pb::RegisterMonitoringEquipmentResponse {})
    }

    pub(super) async fn get_monitoring_equipment_(
        &self,
        p: &Principal,
        r: pb::GetMonitoringEquipmentRequest,
    ) -> Result<pb::GetMonitoringEquipmentResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        self.engine.station(&op, station).await?;
        let Some((doc, _)) = self.engine.store.doc(MONITORING, &op, station).await? else {
            return Ok(pb::GetMonitoringEquipmentResponse::default());
        };
        let register: Register = from_doc(doc)?;
        Ok(pb::GetMonitoringEquipmentResponse {
            cameras: register
                .cameras
                .into_iter()
                .map(|c| pb::Camera {
                    camera_id: c.camera_id,
                    covers: c.covers,
                })
                .collect(),
            links: register
                .links
                .into_iter()
                .map(|l| match l {
                    Link::Ethernet { link_id } => pb::CommunicationLink {
                        link_id,
                        ..Default::default()
                    },
                    Link::Sim {
                        link_id,
                        iccid,
                        carrier,
                        traffic_min_mb,
                        traffic_max_mb,
                    } => pb::CommunicationLink {
                        link_id,
                        iccid,
                        carrier,
                        traffic_min_mb,
                        traffic_max_mb,
                    },
                })
                .collect(),
        })
    }

    pub(super) async fn record_daily_check_(
        &self,
        p: &Principal,
        r: pb::RecordDailyCheckRequest,
    ) -> Result<pb::RecordDailyCheckResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim().to_owned();
        let now = self.engine.clock.now();
        let day = date("day", &r.day)?.unwrap_or_else(|| china_date(now));
        let register: Register = match self.engine.store.doc(MONITORING, &op, &station).await? {
            Some((doc, _)) => from_doc(doc)?,
            None => {
                return Err(Error::precondition(
                    "MON-7",
                    format!("station {station} has no registered cameras or links"),
                ));
            }
        };
        let cameras: Vec<CameraResult> = r
            .cameras
            .iter()
            .map(|c| CameraResult {
                camera_id: c.camera_id.clone(),
                aimed: c.aimed,
                live_video: c.live_video,
                recording: c.recording,
            })
            .collect();
        let by_hand: Vec<LinkResult> = r
            .links
            .iter()
            .map(|l| LinkResult {
                link_id: l.link_id.clone(),
                up: l.up,
                traffic_mb: l.traffic_mb,
                from_telemetry: false,
            })
            .collect();
        // REQ MON-8: where the piles report their links, the day's reports stand in.
        let reported = if register.links.is_empty() {
            Vec::new()
        } else {
            self.engine.reported_links(&op, &station, day).await?
        };
        let links = link_results(&register, &by_hand, &reported);
        let found = findings(&register, &cameras, &links)?;
        let id = format!("{station}/{day}");
        if self
            .engine
            .store
            .doc(DAILY_CHECK, &op, &id)
            .await?
            .is_some()
        {
            return Err(Error::AlreadyExists(format!(
                "the daily check of {station} for {day}"
            )));
        }
        let check = DailyCheck {
            station_id: station.clone(),
            day,
            cameras,
            links,
            findings: found.clone(),
            by: p.to_string(),
        };
        self.engine
            .store
            .insert_doc(
                DocKey {
                    kind: DAILY_CHECK,
                    operator_id: &op,
                    id: &id,
                },
                &station,
                true,
                &to_doc(&check)?,
                now,
                &[],
            )
            .await?;
        let mut defects = Vec::new();
        for finding in &found {
            let defect = self
                .register(
                    p,
                    pb::RegisterDefectRequest {
                        operator_id: op.clone(),
                        station_id: station.clone(),
                        pile_id: String::new(),
                        class: pb::DefectClass::Serious as i32,
                        description: finding.clone(),
                        elimination_plan: "restore monitoring and communication; check again"
                            .into(),
                        maintenance_plan: String::new(),
                    },
                )
                .await?;
            defects.push(defect_to_pb(&defect, now));
        }
        Ok(pb::RecordDailyCheckResponse {
            findings: found,
            defects,
        })
    }

    pub(super) async fn get_daily_check_status_(
        &self,
        p: &Principal,
        r: pb::GetDailyCheckStatusRequest,
    ) -> Result<pb::GetDailyCheckStatusResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let today = china_date(self.engine.clock.now());
        let day = date("day", &r.day)?.unwrap_or(today);
        let check = self
            .engine
            .store
            .doc(DAILY_CHECK, &op, &format!("{}/{day}", r.station_id.trim()))
            .await?;
        let findings = match &check {
            Some((doc, _)) => from_doc::<DailyCheck>(doc.clone())?.findings,
            None => Vec::new(),
        };
        Ok(pb::GetDailyCheckStatusResponse {
            done: check.is_some(),
            overdue: overdue(day, check.is_some(), today),
            findings,
        })
    }

    pub(super) async fn get_monitor_view_(
        &self,
        p: &Principal,
        r: pb::GetMonitorViewRequest,
    ) -> Result<pb::GetMonitorViewResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = Some(r.station_id.trim()).filter(|s| !s.is_empty());
        let now = self.engine.clock.now();
        // The view is of what is open now: the newest MONITOR_VIEW of each kind, oldest first.
        let page = Keyset::first(MONITOR_VIEW);
        let open_orders = OrderFilter {
            station_id: station,
            pile_id: None,
            open_only: true,
        };
        let mut orders: Vec<WorkOrder> =
            (self.engine.store.orders(&op, open_orders, &page).await?)
                .into_iter()
                .map(|o| o.item)
                .collect();
        orders.reverse();
        let mut breached = 0;
        let work_orders = orders
            .iter()
            .map(|o| {
                let d = o.deadlines();
                let next = if let Some(due) = d.arrival_due
                    && o.arrived_at.is_none()
                {
                    Some(("arrival", due))
                } else if o.resolved_at.is_none() {
                    Some(("resolution", d.resolution_due))
                } else {
                    None
                };
                let pb_order = order_to_pb(o, now);
                if !pb_order.breaches.is_empty() {
                    breached += 1;
                }
                pb::OpenWorkOrder {
                    work_order: Some(pb_order),
                    next_limit: next.map(|(what, _)| what.to_owned()).unwrap_or_default(),
                    time_left: next.map(|(_, due)| {
                        let left = due - now;
                        prost_types::Duration {
                            seconds: left.num_seconds(),
                            nanos: 0,
                        }
                    }),
                }
            })
            .collect();
        let open_defects = DefectFilter {
            station_id: station,
            pile_id: None,
            open_only: true,
        };
        let mut defects: Vec<Defect> =
            (self.engine.store.defects(&op, open_defects, &page).await?)
                .into_iter()
                .map(|d| d.item)
                .collect();
        defects.reverse();
        let open_patrols = DocFilter {
            station_id: station,
            open_only: true,
        };
        let mut patrols: Vec<Patrol> = (self.engine.store)
            .list::<Patrol>(&op, open_patrols, &page)
            .await?
            .into_iter()
            .map(|pt| pt.item)
            .collect();
        patrols.reverse();
        Ok(pb::GetMonitorViewResponse {
            work_orders,
            overdue_defects: defects.iter().filter(|d| d.overdue(now)).count() as u32,
            overdue_patrols: patrols.iter().filter(|pt| pt.overdue(now)).count() as u32,
            defects: defects.iter().map(|d| defect_to_pb(d, now)).collect(),
            patrols: patrols.iter().map(|pt| patrol_to_pb(pt, now)).collect(),
            breached_orders: breached,
        })
    }
}
