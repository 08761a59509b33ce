//! Posts per station (REQ STAFF-1, BASE-4, STAFF-2): an attended station has every post of
//! STAFF-1, an unattended one patrol staff; each post has a responsible, qualified person and the
//! written procedure they follow.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

use super::crew::StaffMember;

/// REQ STAFF-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Post {
    /// 站长, the first safety responsible.
    StationMaster,
    /// 安全员.
    SafetyOfficer,
    /// 设备维修员.
    MaintenanceTechnician,
    /// 监控员.
    Monitor,
    /// 充电员.
    ChargingAttendant,
    /// Patrol staff of an unattended station.
    PatrolStaff,
}

pub const ATTENDED_POSTS: &[Post] = &[
    Post::StationMaster,
    Post::SafetyOfficer,
    Post::MaintenanceTechnician,
    Post::Monitor,
    Post::ChargingAttendant,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub post: Post,
    pub staff_id: String,
    /// REQ BASE-4: the written procedure the post follows.
    pub procedure_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationStaffing {
    pub operator_id: String,
    pub station_id: String,
    pub attended: bool,
    pub assignments: Vec<Assignment>,
}

impl StationStaffing {
    pub fn new(operator_id: &str, station_id: &str, attended: bool) -> Self {
        Self {
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
            attended,
            assignments: Vec::new(),
        }
    }

    /// REQ STAFF-1: the posts still without anyone.
    pub fn missing_posts(&self) -> Vec<Post> {
        let required: &[Post] = if self.attended {
            ATTENDED_POSTS
        } else {
            &[Post::PatrolStaff]
        };
        required
            .iter()
            .copied()
            .filter(|p| !self.assignments.iter().any(|a| a.post == *p))
            .collect()
    }

    /// Puts a qualified member of staff on a post, with its written procedure.
    pub fn assign(
        &mut self,
        post: Post,
        member: &StaffMember,
        procedure_ref: &str,
        today: NaiveDate,
    ) -> Result<(), Error> {
        if procedure_ref.trim().is_empty() {
            return Err(Error::invalid(
                "procedure_ref",
                "BASE-4",
                "each post follows a written procedure",
            ));
        }
        // REQ STAFF-2: trained and qualified before taking the post.
        if member.qualified_until.is_none_or(|until| until < today) {
            return Err(Error::invalid(
                "staff_id",
                "STAFF-2",
                format!(
                    "{} has no valid safety training and qualification",
                    member.name
                ),
            ));
        }
        self.assignments.retain(|a| a.post != post);
        self.assignments.push(Assignment {
            post,
            staff_id: member.staff_id.clone(),
            procedure_ref: procedure_ref.trim().to_owned(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::crew::Employer;

    fn member(qualified: Option<&str>) -> StaffMember {
        StaffMember {
            staff_id: "m".into(),
            name: "Mo".into(),
            employer: Employer::Own,
            electrician_certificate_until: None,
            qualified_until: qualified
                .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date")),
            trainings: Vec::new(),
        }
    }

    #[test]
    fn staff_1_an_attended_station_needs_every_post_and_an_unattended_one_patrols() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        let mut attended = StationStaffing::new("OP", "S1", true);
        assert_eq!(attended.missing_posts().len(), 5);
        attended
            .assign(
                Post::Monitor,
                &member(Some("2027-01-01")),
                "SOP-MON-1",
                today,
            )
            .expect("assigned");
        assert_eq!(attended.missing_posts().len(), 4);
        let unattended = StationStaffing::new("OP", "S2", false);
        assert_eq!(unattended.missing_posts(), [Post::PatrolStaff]);
    }

    #[test]
    fn staff_2_and_base_4_a_post_needs_a_qualified_person_and_a_procedure() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        let mut s = StationStaffing::new("OP", "S1", true);
        let err = s
            .assign(Post::Monitor, &member(Some("2026-02-01")), "SOP", today)
            .expect_err("lapsed");
        assert!(matches!(
            err,
            Error::Invalid {
                rule: Some("STAFF-2"),
                ..
            }
        ));
        let err = s
            .assign(Post::Monitor, &member(Some("2027-01-01")), " ", today)
            .expect_err("no procedure");
        assert!(matches!(
            err,
            Error::Invalid {
                rule: Some("BASE-4"),
                ..
            }
        ));
    }
}
