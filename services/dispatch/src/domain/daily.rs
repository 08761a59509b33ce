//! The monitor's daily checks (REQ MON-7, MON-8, EQ-2): each station's cameras and communication
//! links are registered; a daily check records what was found, and whatever is wrong becomes a
//! defect. A check not done by the end of the day is overdue.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

/// A camera and what it covers (REQ MON-7): piles, bays, chargers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Camera {
    pub camera_id: String,
    pub covers: Vec<String>,
}

/// A communication link (REQ MON-8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Link {
    Sim {
        link_id: String,
        iccid: String,
        carrier: String,
        /// The normal daily traffic, MB.
        traffic_min_mb: f64,
        traffic_max_mb: f64,
    },
    Ethernet {
        link_id: String,
    },
}

impl Link {
    pub fn id(&self) -> &str {
        match self {
            Link::Sim { link_id, .. } | Link::Ethernet { link_id } => link_id,
        }
    }
}

/// A station's register of cameras and links.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Register {
    pub cameras: Vec<Camera>,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraResult {
    pub camera_id: String,
    pub aimed: bool,
    pub live_video: bool,
    pub recording: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkResult {
    pub link_id: String,
    /// SIM active, or Ethernet link up.
    pub up: bool,
    /// The day's traffic, MB, for a SIM.
    pub traffic_mb: f64,
    /// Taken from the pile's own report rather than checked by hand.
    #[serde(default)]
    pub from_telemetry: bool,
}

/// A link's state as a pile reported it through telemetry (REQ MON-8).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedLink {
    pub link_id: String,
    pub iccid: String,
    pub up: bool,
    pub traffic_mb_24h: f64,
}

impl Link {
    /// Whether a pile's report is about this link: by its id, or a SIM by its ICCID.
    fn reported_by(&self, r: &ReportedLink) -> bool {
        match self {
            Link::Sim { link_id, iccid, .. } => {
                r.link_id == *link_id || (!r.iccid.is_empty() && r.iccid == *iccid)
            }
            Link::Ethernet { link_id } => r.link_id == *link_id,
        }
    }
}

/// REQ MON-8: the link results of a day's check. A result given by hand stands; a registered
/// link without one takes the day's latest telemetry report of it, where the pile reports.
pub fn link_results(
    register: &Register,
    by_hand: &[LinkResult],
    reported: &[ReportedLink],
) -> Vec<LinkResult> {
    let mut out = by_hand.to_vec();
    for link in &register.links {
        if by_hand.iter().any(|r| r.link_id == link.id()) {
            continue;
        }
        if let Some(r) = reported.iter().find(|r| link.reported_by(r)) {
            out.push(LinkResult {
                link_id: link.id().to_owned(),
                up: r.up,
                traffic_mb: r.traffic_mb_24h,
                from_telemetry: true,
            });
        }
    }
    out
}

/// Checks a day's results against the register; returns what is wrong, one line each.
pub fn findings(
    register: &Register,
    cameras: &[CameraResult],
    links: &[LinkResult],
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for c in &register.cameras {
        let r = cameras
            .iter()
            .find(|r| r.camera_id == c.camera_id)
            .ok_or_else(|| {
                Error::invalid(
                    "cameras",
                    "MON-7",
                    format!("camera {} has no result", c.camera_id),
                )
            })?;
        let wrong: Vec<&str> = [
            (r.aimed, "not aimed at its piles and bays"),
            (r.live_video, "no live video"),
            (r.recording, "not recording"),
        ]
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what)
        .collect();
        if !wrong.is_empty() {
            out.push(format!(
                "camera {}: {} (REQ MON-7)",
                c.camera_id,
                wrong.join(", ")
            ));
        }
    }
    for l in &register.links {
        let r = links.iter().find(|r| r.link_id == l.id()).ok_or_else(|| {
            Error::invalid(
                "links",
                "MON-8",
                format!(
                    "link {} has no result and no telemetry report of the day",
                    l.id()
                ),
            )
        })?;
        match l {
            Link::Sim {
                iccid,
                traffic_min_mb,
                traffic_max_mb,
                ..
            } => {
                if !r.up {
                    out.push(format!("SIM {iccid} is inactive (REQ MON-8)"));
                } else if !(*traffic_min_mb..=*traffic_max_mb).contains(&r.traffic_mb) {
                    out.push(format!(
                        "SIM {iccid} carried {} MB, outside {traffic_min_mb} to {traffic_max_mb} MB (REQ MON-8)",
                        r.traffic_mb
                    ));
                }
            }
            Link::Ethernet { link_id } => {
                if !r.up {
                    out.push(format!("Ethernet link {link_id} is down (REQ MON-8)"));
                }
            }
        }
    }
    Ok(out)
}

/// REQ MON-7, MON-8: a day's check is overdue once the day is over without it.
pub fn overdue(day: NaiveDate, done: bool, today: NaiveDate) -> bool {
    !done && today > day
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register() -> Register {
        Register {
            cameras: vec![Camera {
                camera_id: "CAM-1".into(),
                covers: vec!["P1".into(), "bay 1".into()],
            }],
            links: vec![
                Link::Sim {
                    link_id: "SIM-1".into(),
                    iccid: "8986001".into(),
                    carrier: "China Mobile".into(),
                    traffic_min_mb: 5.0,
                    traffic_max_mb: 50.0,
                },
                Link::Ethernet {
                    link_id: "ETH-1".into(),
                },
            ],
        }
    }

    #[test]
    fn mon_7_and_mon_8_failed_cameras_and_abnormal_links_are_findings() {
        let ok_cam = CameraResult {
            camera_id: "CAM-1".into(),
            aimed: true,
            live_video: true,
            recording: true,
        };
        let links = |up: bool, mb: f64| {
            vec![
                LinkResult {
                    link_id: "SIM-1".into(),
                    up,
                    traffic_mb: mb,
                    from_telemetry: false,
                },
                LinkResult {
                    link_id: "ETH-1".into(),
                    up: true,
                    traffic_mb: 0.0,
                    from_telemetry: false,
                },
            ]
        };
        assert!(
            findings(
                &register(),
                std::slice::from_ref(&ok_cam),
                &links(true, 20.0)
            )
            .expect("checked")
            .is_empty()
        );
        let heavy = findings(
            &register(),
            std::slice::from_ref(&ok_cam),
            &links(true, 400.0),
        )
        .expect("checked");
        assert!(heavy[0].contains("outside"));
        let dead = findings(&register(), &[ok_cam], &links(false, 0.0)).expect("checked");
        assert!(dead[0].contains("inactive"));
        let blind = CameraResult {
            camera_id: "CAM-1".into(),
            aimed: true,
            live_video: false,
            recording: false,
        };
        let f = findings(&register(), &[blind], &links(true, 20.0)).expect("checked");
        assert!(f[0].contains("no live video") && f[0].contains("not recording"));
        assert!(
            findings(&register(), &[], &links(true, 20.0)).is_err(),
            "every camera answered"
        );
    }

    #[test]
    fn mon_8_links_the_piles_report_need_no_result_by_hand() {
        let reported = [
            ReportedLink {
                link_id: String::new(),
                iccid: "8986001".into(),
                up: true,
                traffic_mb_24h: 400.0,
            },
            ReportedLink {
                link_id: "OTHER".into(),
                iccid: String::new(),
                up: false,
                traffic_mb_24h: 0.0,
            },
        ];
        let by_hand = [LinkResult {
            link_id: "ETH-1".into(),
            up: true,
            traffic_mb: 0.0,
            from_telemetry: false,
        }];
        let links = link_results(&register(), &by_hand, &reported);
        assert_eq!(links.len(), 2, "the unregistered link is ignored");
        let sim = links
            .iter()
            .find(|l| l.link_id == "SIM-1")
            .expect("SIM by ICCID");
        assert!(sim.from_telemetry);
        let cam = CameraResult {
            camera_id: "CAM-1".into(),
            aimed: true,
            live_video: true,
            recording: true,
        };
        let found = findings(&register(), std::slice::from_ref(&cam), &links).expect("checked");
        assert!(found[0].contains("outside"), "{found:?}");
        // A result given by hand stands over the report; with neither, the check is refused.
        let hand_sim = LinkResult {
            link_id: "SIM-1".into(),
            up: true,
            traffic_mb: 20.0,
            from_telemetry: false,
        };
        let links = link_results(&register(), &[hand_sim, by_hand[0].clone()], &reported);
        assert!(
            findings(&register(), std::slice::from_ref(&cam), &links)
                .expect("checked")
                .is_empty()
        );
        let none = link_results(&register(), &by_hand, &[]);
        assert!(matches!(
            findings(&register(), &[cam], &none),
            Err(Error::Invalid {
                rule: Some("MON-8"),
                ..
            })
        ));
    }

    #[test]
    fn mon_8_a_check_not_done_by_the_end_of_the_day_is_overdue() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).expect("d");
        assert!(!overdue(day, false, day));
        assert!(overdue(day, false, day.succ_opt().expect("d")));
        assert!(!overdue(day, true, day.succ_opt().expect("d")));
    }
}
