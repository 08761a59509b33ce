//! The console's words in Chinese (zh-CN, the default) and English, and times as people in
//! Shaoxing read them (Asia/Shanghai, UTC+8 all year).

use chrono::{DateTime, FixedOffset, Utc};

/// The language cookie's name.
pub const COOKIE: &str = "cm_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// From the cookie's value; Chinese unless it says English.
    pub fn from_cookie(value: Option<&str>) -> Self {
        match value {
            Some("en") => Self::En,
            _ => Self::Zh,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
        }
    }

    /// The other language, offered by the switch.
    pub fn other(self) -> Self {
        match self {
            Self::Zh => Self::En,
            Self::En => Self::Zh,
        }
    }

    pub fn cookie_value(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }

    /// The text of `key`; the key itself when it has none (a test keeps them all defined).
    pub fn t(self, key: &'static str) -> &'static str {
        match text(key) {
            Some((zh, en)) => match self {
                Self::Zh => zh,
                Self::En => en,
            },
            None => key,
        }
    }
}

/// Every text of the console: (zh-CN, en).
fn text(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "app" => ("充电运维平台", "Chargemesh console"),
        "lang.switch" => ("English", "中文"),
        "nav.work_orders" => ("工单", "Work orders"),
        "nav.fleet" => ("监控", "Fleet"),
        "nav.complaints" => ("投诉", "Complaints"),
        "nav.reports" => ("报表", "Reports"),
        "nav.registry" => ("档案", "Registry"),
        "nav.defects" => ("缺陷", "Defects"),
        "nav.patrols" => ("巡视", "Patrols"),
        "nav.checks" => ("每日检查", "Daily checks"),
        "chk.title" => ("今日视频与通信检查", "Today's camera and link checks"),
        "chk.done" => ("已完成", "Done"),
        "chk.due" => ("待检查", "To do"),
        "chk.overdue" => ("已逾期", "Overdue"),
        "chk.none" => (
            "本站未登记摄像机和通信链路。",
            "No cameras or links registered for this station.",
        ),
        "chk.camera" => ("摄像机", "Camera"),
        "chk.aimed" => ("角度正确", "Aimed right"),
        "chk.live" => ("实时画面正常", "Live video"),
        "chk.recording" => ("正常录像", "Recording"),
        "chk.link" => ("通信链路", "Link"),
        "chk.up" => ("在线", "Up"),
        "chk.traffic" => ("近 24 小时流量（MB）", "Traffic over 24 h, MB"),
        "chk.record" => ("提交检查", "Record the check"),
        "nav.plans" => ("维护计划", "Maintenance"),
        "plan.title" => ("维护计划", "Maintenance plans"),
        "plan.none" => ("没有维护计划。", "No maintenance plans."),
        "plan.approved" => ("已审批", "Approved by"),
        "plan.awaiting" => ("待审批", "Awaiting approval"),
        "plan.done" => ("已完成", "done"),
        "plan.approve" => ("审批通过", "Approve"),
        "plan.item" => ("维护项目", "Item"),
        "plan.items" => ("维护项目", "Items"),
        "plan.complete" => ("记录完成", "Record it done"),
        "plan.draft" => ("编制维护计划", "Draft a plan"),
        "plan.title_field" => ("名称", "Title"),
        "plan.period" => ("周期（年 YYYY 或月 YYYY-MM）", "Period (YYYY or YYYY-MM)"),
        "plan.item.distribution" => ("配电设备", "Distribution equipment"),
        "plan.item.modes" => ("充电模式", "Charging modes"),
        "plan.item.communication" => ("通信", "Communication"),
        "plan.item.display" => ("显示", "Display"),
        "plan.item.input" => ("输入", "Input"),
        "plan.item.metering" => ("计量", "Metering"),
        "plan.item.cabinets" => ("柜体、监控与标识", "Cabinets, monitoring, signage"),
        "plan.item.cleaning" => ("清洁", "Cleaning"),
        "plan.item.lubrication" => ("润滑", "Lubrication"),
        "plan.item.grounding" => ("接地电阻测试", "Grounding resistance test"),
        "plan.item.verification" => ("电能表年度检定", "Annual meter verification"),
        "plan.item.charging_test" => ("实车充电测试", "Real charging test"),
        "pat.title" => ("巡视", "Patrols"),
        "pat.none" => ("没有待完成的巡视。", "No patrols to do."),
        "pat.normal" => ("正常巡视", "Normal patrol"),
        "pat.special" => ("特殊巡视", "Special patrol"),
        "pat.due" => ("完成时限", "Due"),
        "pat.ok" => ("正常", "In order"),
        "pat.if_failed" => ("异常时的缺陷等级", "If not: the defect's class"),
        "pat.plan" => ("消缺方案或维护计划", "Elimination or maintenance plan"),
        "pat.complete" => ("提交巡视记录", "Record the patrol"),
        "pat.schedule" => ("安排巡视", "Schedule a patrol"),
        "nav.orders" => ("异常交易", "Abnormal orders"),
        "nav.exemptions" => ("免责申报", "Exemptions"),
        "ex.title" => ("免责申报", "Exemptions"),
        "ex.none" => ("没有免责申报。", "No exemptions declared."),
        "ex.stations" => ("涉及站点", "Stations"),
        "ex.one_per_line" => ("（每行一个站点编号）", "(one station id per line)"),
        "ex.period" => ("时段", "Period"),
        "ex.start" => ("开始（北京时间）", "From (Beijing time)"),
        "ex.end" => ("结束（北京时间）", "Until (Beijing time)"),
        "ex.cause" => ("原因", "Cause"),
        "ex.cause_text" => ("原因说明", "Cause, in words"),
        "ex.cause.platform" => ("运营管理平台故障", "The platform failed"),
        "ex.cause.tcu" => ("充电控制器升级", "Charging controllers upgraded"),
        "ex.cause.weather" => ("恶劣天气", "Severe weather"),
        "ex.cause.other" => ("其他外部原因", "Another external cause"),
        "ex.declared" => ("待审批", "Awaiting decision"),
        "ex.approved" => ("已批准", "Approved"),
        "ex.rejected" => ("未批准", "Rejected"),
        "ex.declared_by" => ("申报人", "Declared by"),
        "ex.approve" => ("批准", "Approve"),
        "ex.reject" => ("不批准", "Reject"),
        "ex.decide" => ("审批", "Decide"),
        "ex.declare" => ("申报免责", "Declare an exemption"),
        "ord.title" => ("异常交易核查", "Abnormal transactions"),
        "ord.none" => ("没有待核查的异常交易。", "No flagged orders to verify."),
        "ord.time" => ("充电时间", "Charging"),
        "ord.money" => ("金额（元）", "Amount (yuan)"),
        "ord.reported" => ("桩端上报", "As the pile reported"),
        "ord.version" => ("版本", "Version"),
        "ord.reason" => ("核查结论", "What the verification found"),
        "ord.stop" => (
            "更正结束读数（千瓦时，可不填）",
            "Corrected meter stop, kWh (optional)",
        ),
        "ord.verify" => ("提交核查", "Record the verification"),
        "ord.flag.above_rated" => ("电量超过额定能力", "Energy above the rating"),
        "ord.flag.backwards" => ("电表读数倒退", "Register went backwards"),
        "ord.flag.zero" => ("零电量", "Zero energy"),
        "ord.flag.overlap" => ("订单时间重叠", "Overlapping sessions"),
        "ord.flag.never_ended" => ("未正常结束", "Never ended"),
        "ord.flag.duplicate" => ("订单号重复", "Duplicate order id"),
        "ord.flag.amount" => ("金额与价格不符", "Amount disagrees with the tariff"),
        "ord.flag.dispute" => ("客户异议", "Customer dispute"),
        "ord.flag.never_started" => ("未见开始", "Never started"),
        "def.title" => ("设备缺陷", "Defects"),
        "def.none" => ("没有未验收的缺陷。", "No defects awaiting acceptance."),
        "def.critical" => ("危急缺陷", "Critical"),
        "def.serious" => ("严重缺陷", "Serious"),
        "def.general" => ("一般缺陷", "General"),
        "def.open" => ("待消除", "Open"),
        "def.eliminated" => ("已消除待验收", "Eliminated, awaiting acceptance"),
        "def.accepted" => ("已验收", "Accepted"),
        "def.found" => ("发现", "Found"),
        "def.due" => ("消除时限", "Due"),
        "def.class" => ("缺陷等级", "Class"),
        "def.elimination_plan" => ("消缺方案", "Elimination plan"),
        "def.maintenance_plan" => ("纳入的维护计划", "Maintenance plan"),
        "def.for_grave" => ("（危急、严重缺陷必填）", "(critical and serious)"),
        "def.for_general" => ("（一般缺陷必填）", "(general)"),
        "def.record" => ("消缺记录", "What was done"),
        "def.eliminate" => ("消除", "Eliminated"),
        "def.pass" => ("验收合格", "Passed"),
        "def.fail" => ("不合格，重新消缺", "Failed: back to elimination"),
        "def.accept" => ("验收", "Accept"),
        "def.register" => ("登记缺陷", "Register a defect"),
        "pile.reason" => ("停用原因", "Why"),
        "pile.reason.fault" => (
            "故障派单 2 小时未修复",
            "A fault unrepaired 2 h after dispatch",
        ),
        "pile.reason.maintenance" => ("计划维护", "Planned maintenance"),
        "pile.reason.distribution" => ("配电设备或线路检修", "Distribution maintenance"),
        "pile.reason.weather" => ("极端天气", "Extreme weather"),
        "pile.reason.other" => ("其他外部原因", "Another external cause"),
        "pile.evidence" => (
            "证据（每行一项，如照片编号）",
            "Evidence (one per line, such as photo references)",
        ),
        "pile.note" => ("说明", "Note"),
        "pile.suspend" => ("申请停用", "Suspend"),
        "pile.resume" => ("恢复使用", "Resume"),
        "pile.history" => ("最近 7 天状态记录", "Status over the last 7 days"),
        "pile.no_history" => (
            "最近 7 天没有状态变化。",
            "No status changes in the last 7 days.",
        ),
        "pile.time" => ("时间", "Time"),
        "pile.connector" => ("充电接口", "Connector"),
        "pile.back" => ("返回实时监控", "Back to the fleet"),
        "reg.title" => ("站点档案", "Stations"),
        "reg.name" => ("名称", "Name"),
        "reg.area" => ("行政区划", "Area"),
        "reg.state" => ("阶段", "Stage"),
        "reg.next" => ("下一步", "Next step"),
        "reg.next.accept" => (
            "验收（NB/T 33004 验收报告）",
            "Acceptance (the NB/T 33004 report)",
        ),
        "reg.next.file" => ("向市场监管部门备案", "Filing with the market regulator"),
        "reg.next.connect" => ("接入运营管理平台", "Connection to the platform"),
        "reg.next.trial" => ("开始试运行", "Trial operation"),
        "reg.next.commission" => (
            "试运行数据合格后正式投运",
            "Commissioning, once the trial days are good",
        ),
        "reg.state.registered" => ("已登记", "Registered"),
        "reg.state.accepted" => ("已验收", "Accepted"),
        "reg.state.filed" => ("已备案", "Filed"),
        "reg.state.connected" => ("已接入", "Connected"),
        "reg.state.trial" => ("试运行", "Trial operation"),
        "reg.state.commissioned" => ("已投运", "Commissioned"),
        "reg.public" => ("本站公示页面", "This station's public page"),
        "reg.power" => ("额定功率", "Rated power"),
        "reg.pile_state" => ("状态", "State"),
        "reg.certificate" => ("计量检定证书", "Verification certificate"),
        "reg.valid_until" => ("有效期至", "Valid until"),
        "reg.no_certificate" => ("无证书", "None"),
        "reg.expired" => ("已过期，不得结算", "Expired: not settled"),
        "reg.expiring" => ("即将到期，剩余天数", "Expiring, days left:"),
        "reg.retired" => ("已退役", "Retired"),
        "reg.in_service" => ("在用", "In service"),
        "rep.title" => ("运营指标", "Operating figures"),
        "rep.period" => ("周期", "Period"),
        "rep.day" => ("日", "Day"),
        "rep.month" => ("月", "Month"),
        "rep.year" => ("年", "Year"),
        "rep.start" => ("起始（如 2026-12）", "Starting (such as 2026-12)"),
        "rep.show" => ("查看", "Show"),
        "rep.shares" => ("可用率与及时率", "Availability and on-time shares"),
        "rep.daily" => ("每日可用率", "Availability by day"),
        "rep.availability" => ("可用率", "Availability"),
        "rep.sessions" => ("充电次数", "Sessions"),
        "rep.energy" => ("电量（千瓦时）", "Energy (kWh)"),
        "rep.faults" => ("故障工单", "Fault orders"),
        "rep.arrivals" => ("到场及时率", "On-time arrivals"),
        "rep.repairs" => ("修复及时率", "On-time repairs"),
        "rep.complaints" => ("投诉", "Complaints"),
        "rep.responses" => ("投诉响应及时率", "On-time responses"),
        "rep.satisfaction" => ("满意度", "Satisfaction"),
        "rep.defects" => ("缺陷及时消除率", "Defects on time"),
        "rep.by_pile" => ("各充电桩故障次数", "Faults by pile"),
        "rep.all" => ("全部站点", "All stations"),
        "rep.exports" => ("导出", "Exports"),
        "rep.kpi_csv" => ("运营指标 CSV", "KPIs, CSV"),
        "rep.faults_csv" => ("故障分析 CSV", "Fault analysis, CSV"),
        "rep.defects_csv" => ("缺陷统计 CSV", "Defect statistics, CSV"),
        "rep.self" => ("年度自评报告", "The year's self-evaluation"),
        "pub.operator" => ("运营商", "Operator"),
        "pub.address" => ("地址", "Address"),
        "pub.hours" => ("开放时间", "Opening hours"),
        "pub.hotline" => ("服务电话", "Service hotline"),
        "pub.supervision" => ("监督电话", "Supervision hotline"),
        "pub.free" => ("当前空闲充电接口", "Connectors free now"),
        "pub.prices" => ("收费标准", "Prices"),
        "pub.since" => ("执行时间", "In force since"),
        "pub.period" => ("时段", "Period"),
        "pub.electricity" => ("电费（元/千瓦时）", "Electricity (yuan/kWh)"),
        "pub.service" => ("服务费（元/千瓦时）", "Service fee (yuan/kWh)"),
        "pub.total" => ("合计", "Total"),
        "pub.unit" => ("价格单位：元/千瓦时。", "Prices in yuan per kWh."),
        "pub.piles" => ("充电设备", "Charging equipment"),
        "pub.suspended" => ("暂停使用", "Out of service"),
        "pub.power" => ("额定功率", "Rated power"),
        "pub.voltage" => ("额定电压", "Rated voltage"),
        "pub.current" => ("额定电流", "Rated current"),
        "pub.maker" => ("制造商、型号", "Maker and model"),
        "pub.complain" => ("投诉与建议", "Complaints and suggestions"),
        "pub.contact" => (
            "联系电话（用于答复和回访）",
            "Phone, for our answer and call-back",
        ),
        "pub.qr" => ("扫码查看本站信息", "Scan for this station's page"),
        "pub.thanks" => ("已收到您的投诉", "Your complaint is received"),
        "pub.filed" => ("投诉编号：", "Complaint number:"),
        "pub.answer_by" => ("我们将在以下时间前答复：", "We answer by"),
        "pub.back" => ("返回站点页面", "Back to the station"),
        "pub.unavailable" => (
            "暂时无法获取站点信息，请稍后再试。",
            "The station's information cannot be had just now; please try again.",
        ),
        "pub.error.description" => (
            "请填写投诉内容（不超过 1000 字）。",
            "Please say what happened (at most 1000 characters).",
        ),
        "pub.error.contact" => (
            "请留下联系电话（不超过 64 个字符），以便答复。",
            "Please leave a phone number (at most 64 characters) for our answer.",
        ),
        "pub.error.category" => ("请选择类别。", "Please choose a category."),
        "pub.error.too_many" => (
            "提交过于频繁，请一小时后再试，或拨打服务电话。",
            "Too many complaints from here; please try again in an hour, or call the hotline.",
        ),
        "price.cusp" => ("尖", "cusp"),
        "price.peak" => ("峰", "peak"),
        "price.flat" => ("平", "flat"),
        "price.valley" => ("谷", "valley"),
        "pile.dc" => ("直流", "DC"),
        "pile.ac" => ("交流", "AC"),
        "pile.acdc" => ("交直流", "AC/DC"),
        "cmp.title" => ("投诉处理", "Complaints"),
        "cmp.none" => ("没有待处理的投诉。", "No complaints to handle."),
        "cmp.new" => ("登记投诉", "Take a complaint"),
        "cmp.id" => ("投诉", "Complaint"),
        "cmp.received" => ("受理时间", "Received"),
        "cmp.category" => ("类别", "Category"),
        "cmp.clock" => ("时限", "Limit"),
        "cmp.description" => ("内容", "What happened"),
        "cmp.contact" => ("联系方式", "Contact"),
        "cmp.response_due" => ("24 小时响应时限", "24-hour response due"),
        "cmp.promise_due" => ("承诺办结时限", "Promised by"),
        "cmp.satisfaction" => ("满意度", "Satisfaction"),
        "cmp.record" => ("处理记录", "Record"),
        "cmp.back" => ("返回投诉列表", "Back to the complaints"),
        "cmp.reply" => ("答复客户", "Reply to the customer"),
        "cmp.acknowledge" => ("响应", "Acknowledge"),
        "cmp.event" => ("调查经过", "What the investigation found"),
        "cmp.responsible" => ("责任方", "Responsible party"),
        "cmp.investigate" => ("记录调查", "Record the investigation"),
        "cmp.handling" => ("处理方案", "Handling"),
        "cmp.due" => ("承诺办结时间（北京时间）", "Promised by (Beijing time)"),
        "cmp.promise" => ("作出承诺", "Promise"),
        "cmp.resolution" => ("办结记录", "What was done"),
        "cmp.resolve" => ("办结", "Resolve"),
        "cmp.comment" => ("回访意见", "The customer's comment"),
        "cmp.revisit" => ("记录回访", "Record the revisit"),
        "cmp.archive" => ("归档", "Archive"),
        "cmp.submit" => ("提交", "Submit"),
        "cmp.state.received" => ("已受理", "Received"),
        "cmp.state.acknowledged" => ("已响应", "Acknowledged"),
        "cmp.state.investigating" => ("调查中", "Investigating"),
        "cmp.state.promised" => ("已承诺", "Promised"),
        "cmp.state.resolved" => ("已办结", "Resolved"),
        "cmp.state.revisited" => ("已回访", "Revisited"),
        "cmp.state.archived" => ("已归档", "Archived"),
        "cmp.cat.charging_failure" => ("无法充电", "Charging failure"),
        "cmp.cat.billing" => ("计费", "Billing"),
        "cmp.cat.pricing" => ("价格", "Pricing"),
        "cmp.cat.service_attitude" => ("服务态度", "Service attitude"),
        "cmp.cat.facility_safety" => ("设施安全", "Facility safety"),
        "cmp.cat.queueing" => ("排队", "Queueing"),
        "cmp.cat.other" => ("其他", "Other"),
        "fleet.title" => ("实时监控", "Fleet, live"),
        "fleet.live" => (
            "状态实时更新；故障和离网的优先显示。",
            "Updated live; faulted and offline first.",
        ),
        "fleet.none" => ("没有站点。", "No stations."),
        "status.offline" => ("离网", "Offline"),
        "status.idle" => ("空闲", "Idle"),
        "status.occupied" => ("占用（未充电）", "Occupied"),
        "status.charging" => ("充电中", "Charging"),
        "status.reserved" => ("预约", "Reserved"),
        "status.fault" => ("故障", "Faulted"),
        "nav.signout" => ("退出", "Sign out"),
        "signin.title" => ("登录", "Sign in"),
        "signin.dev" => (
            "开发环境登录：选择演示人员和岗位",
            "Development sign-in: pick a demo person and role",
        ),
        "signin.person" => ("人员", "Person"),
        "signin.oidc" => (
            "使用统一身份认证登录",
            "Sign in with your organisation's account",
        ),
        "signin.role" => ("岗位", "Role"),
        "signin.submit" => ("登录", "Sign in"),
        "signin.none" => ("未配置登录方式。", "No sign-in is configured."),
        "role.monitor" => ("监控员", "Monitor"),
        "role.repairer" => ("维修人员", "Repairer"),
        "role.station_master" => ("站长", "Station master"),
        "role.safety_officer" => ("安全员", "Safety officer"),
        "role.om_manager" => ("运维经理", "O&M manager"),
        "role.complaint_handler" => ("客服", "Complaint handler"),
        "role.platform_admin" => ("平台管理员", "Platform administrator"),
        "wo.title" => ("未关闭工单", "Open work orders"),
        "wo.none" => ("没有未关闭的工单。", "No open work orders."),
        "wo.order" => ("工单", "Order"),
        "wo.station" => ("站点", "Station"),
        "wo.pile" => ("充电桩", "Pile"),
        "wo.fault" => ("故障", "Fault"),
        "wo.state" => ("状态", "State"),
        "wo.received" => ("接单时间", "Received"),
        "wo.arrival_due" => ("到场时限", "Arrival due"),
        "wo.resolution_due" => ("修复时限", "Repair due"),
        "wo.crew" => ("维修人员", "Crew"),
        "wo.breached" => ("已超时", "Breached"),
        "wo.left" => ("剩余", "left"),
        "wo.late" => ("超时", "late"),
        "wo.met" => ("已完成", "met"),
        "state.received" => ("已接单", "Received"),
        "state.dispatched" => ("已派单", "Dispatched"),
        "state.arrived" => ("已到场", "Arrived"),
        "state.resolved" => ("已修复", "Resolved"),
        "state.closed" => ("已关闭", "Closed"),
        "wo.dispatch" => ("派单", "Dispatch"),
        "wo.dispatch.crew" => (
            "维修人员（须持有效电工证并经培训）",
            "Crew (with a valid electrician certificate and training)",
        ),
        "wo.dispatch.risk" => ("作业风险", "Risk"),
        "risk.normal" => ("一般", "Normal"),
        "risk.high_voltage" => ("高压作业", "High voltage"),
        "risk.work_at_height" => ("高处作业", "Work at height"),
        "wo.checkin" => ("到场签到", "Check in on site"),
        "wo.checkin.where" => (
            "当前位置（经度、纬度）",
            "Where you are (longitude, latitude)",
        ),
        "wo.checkin.locate" => ("使用本机定位", "Use this device's location"),
        "wo.longitude" => ("经度", "Longitude"),
        "wo.latitude" => ("纬度", "Latitude"),
        "wo.resolve" => ("提交修复", "Resolve"),
        "wo.test_record" => ("测试记录", "Test record"),
        "wo.confirm" => ("确认故障已排除", "Confirm the fault is cleared"),
        "wo.back" => ("返回工单列表", "Back to the work orders"),
        "wo.done" => ("已保存。", "Saved."),
        "error.refused" => ("操作未成功：", "Not done: "),
        "error.csrf" => (
            "表单已过期，请重新提交。",
            "The form expired; please submit it again.",
        ),
        "error.not_found" => ("未找到。", "Not found."),
        _ => return None,
    })
}

/// China Standard Time.
pub fn china() -> FixedOffset {
    chargemesh_kit::clock::china_offset()
}

/// A time as `YYYY-MM-DD HH:MM` in Asia/Shanghai.
pub fn local(at: DateTime<Utc>) -> String {
    at.with_timezone(&china())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// A form's `datetime-local` field (`YYYY-MM-DDTHH:MM`, Beijing time) as a protobuf time, or
/// the field's error in the API's terms.
pub fn local_input(field: &str, value: &str) -> Result<prost_types::Timestamp, tonic::Status> {
    chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M")
        .ok()
        .and_then(|naive| naive.and_local_timezone(china()).single())
        .map(|t| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        })
        .ok_or_else(|| {
            tonic::Status::invalid_argument(format!(
                "{field}: a date and time such as 2026-12-08T18:00 (Beijing time)"
            ))
        })
}

/// A duration in words: `1 h 05 min`, `12 min`, `40 s`.
pub fn span(seconds: i64) -> String {
    let seconds = seconds.abs();
    match (seconds / 3600, seconds % 3600 / 60) {
        (0, 0) => format!("{seconds} s"),
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m:02} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_asia_shanghai() {
        let at = DateTime::parse_from_rfc3339("2026-12-06T16:30:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        assert_eq!(local(at), "2026-12-07 00:30", "past UTC+8 midnight");
        assert_eq!(span(3_900), "1 h 05 min");
        assert_eq!(span(-720), "12 min");
        assert_eq!(span(40), "40 s");
    }

    #[test]
    fn chinese_is_the_default_and_english_the_switch() {
        assert_eq!(Lang::from_cookie(None), Lang::Zh);
        assert_eq!(Lang::from_cookie(Some("fr")), Lang::Zh);
        assert_eq!(Lang::from_cookie(Some("en")), Lang::En);
        assert_eq!(Lang::Zh.t("nav.work_orders"), "工单");
        assert_eq!(Lang::En.t("nav.work_orders"), "Work orders");
    }
}
