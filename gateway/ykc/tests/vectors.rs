//! The codec against the sample frames of `design/ykc/frames.json` (copied beside this test):
//! every frame whose CRC verifies is framed, with the quirk it shows recorded; every clean vector
//! is decoded, its fields asserted, and re-encoded to the same bytes.

use chargemesh_ykc::records::{BillingModel, Transaction};
use chargemesh_ykc::{CrcOrder, FrameReader, Message, Received};

struct Vector {
    id: String,
    bytes: Vec<u8>,
    order: CrcOrder,
    length_ok: bool,
    /// The body follows the V1.6 layout (`None`: a type outside V1.5/V1.6).
    layout_ok: Option<bool>,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("frames.json");
    let all: serde_json::Value = serde_json::from_str(text).expect("frames.json parses");
    all["frames"]
        .as_array()
        .expect("a frames array")
        .iter()
        .filter(|f| f["crc_ok"] == true)
        .map(|f| Vector {
            id: f["id"].as_str().unwrap_or_default().to_owned(),
            bytes: unhex(f["hex"].as_str().unwrap_or_default()),
            order: match f["crc_order"].as_str() {
                Some("high-first") => CrcOrder::HighFirst,
                _ => CrcOrder::LowFirst,
            },
            length_ok: f["length_ok"] == true,
            layout_ok: f["layout_matches_spec"].as_bool(),
        })
        .collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("00"), 16).unwrap_or(0))
        .collect()
}

fn read_one(bytes: &[u8]) -> Received {
    let mut reader = FrameReader::new();
    reader.extend(bytes);
    let received = reader.next_frame().expect("a frame");
    assert_eq!(reader.held(), 0, "nothing left over");
    assert_eq!(reader.next_frame(), None);
    received
}

fn vector(id: &str) -> Vector {
    vectors()
        .into_iter()
        .find(|v| v.id == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

fn decode(id: &str) -> Message {
    Message::decode(&read_one(&vector(id).bytes).frame).expect("decodes")
}

#[test]
fn all_57_verifying_frames_are_framed_with_their_crc_order_and_length_quirk() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 57);
    for v in &vectors {
        let received = read_one(&v.bytes);
        assert_eq!(received.crc_order, v.order, "{}: CRC order", v.id);
        assert_eq!(
            received.body_length_quirk, !v.length_ok,
            "{}: length quirk",
            v.id
        );
        assert_eq!(received.frame.kind, v.bytes[5], "{}: type", v.id);
    }
    let high_first = vectors
        .iter()
        .filter(|v| v.order == CrcOrder::HighFirst)
        .count();
    assert_eq!(high_first, 11);
}

#[test]
fn every_clean_vector_decodes_and_re_encodes_to_the_same_bytes() {
    let mut checked = 0;
    for v in vectors().iter().filter(|v| v.layout_ok == Some(true)) {
        let received = read_one(&v.bytes);
        let message = Message::decode(&received.frame).unwrap_or_else(|e| panic!("{}: {e}", v.id));
        let again = message
            .to_frame(received.frame.sequence)
            .and_then(|f| f.encode_with(received.crc_order))
            .unwrap_or_else(|e| panic!("{}: {e}", v.id));
        let mut expected = v.bytes.clone();
        // A frame whose length byte counted only its body is re-encoded with the right one
        // (the CRC does not cover it).
        expected[1] = (received.frame.body.len() + 4) as u8;
        assert_eq!(again, expected, "{}", v.id);
        checked += 1;
    }
    assert!(checked >= 45, "{checked} clean vectors");
}

#[test]
fn login_of_a_real_pile_with_a_hex_iccid() {
    let Message::Login(login) = decode("jcpp-01") else {
        panic!("not a login");
    };
    assert_eq!(login.pile, "20231212000010");
    assert_eq!((login.pile_type, login.guns, login.protocol), (1, 1, 0x10));
    assert_eq!(login.software, "GV.95r13");
    assert_eq!(login.network, 0);
    assert_eq!(login.iccid, "898604D11722D0348606");
    assert_eq!(login.carrier, 2);
    // The same frame with its CRC high byte first.
    let quirk = read_one(&vector("jcpp-01-2").bytes);
    assert_eq!(quirk.crc_order, CrcOrder::HighFirst);
    assert_eq!(Message::decode(&quirk.frame), Ok(Message::Login(login)));
}

#[test]
fn replies_of_the_spec_and_of_a_real_platform() {
    assert_eq!(
        decode("spec-02"),
        Message::LoginReply {
            pile: "55031412782305".into(),
            result: 0
        }
    );
    assert_eq!(
        decode("spec-06"),
        Message::ModelCheckReply {
            pile: "55031412782305".into(),
            model: "0000".into(),
            result: 0
        }
    );
    assert_eq!(
        decode("jcpp-03"),
        Message::Heartbeat {
            pile: "20231212000010".into(),
            gun: 1,
            status: 0
        }
    );
    // The reply echoes the request's sequence bytes as JCPP sent them (swapped): kept verbatim.
    let check = read_one(&vector("jcpp-05").bytes).frame;
    let reply = read_one(&vector("jcpp-06").bytes).frame;
    assert_eq!(check.sequence, [0x71, 0xAD]);
    assert_eq!(reply.sequence, [0xAD, 0x71]);
    assert_eq!(
        decode("jcpp-40"),
        Message::TransactionAck {
            serial: "20231212000010323239000000000000".into(),
            result: 0
        }
    );
}

#[test]
fn real_time_data_of_a_charging_gun() {
    let Message::Realtime(data) = decode("jcpp-13") else {
        panic!("not real-time data");
    };
    assert_eq!(data.serial, "20231212000010000000001005713600");
    assert!(data.in_session());
    assert_eq!((data.pile.as_str(), data.gun), ("20231212000010", 1));
    assert_eq!((data.status, data.returned, data.plugged), (3, 0, 1));
    assert_eq!((data.voltage, data.current), (3732, 1012));
    assert_eq!((data.gun_temperature, data.battery_temperature), (84, 85));
    assert_eq!(
        (data.soc, data.minutes, data.remaining_minutes),
        (78, 16, 32)
    );
    assert_eq!(
        (data.energy, data.lossy_energy, data.amount),
        (88_000, 0, 93_280)
    );
    assert_eq!(data.faults, 0);
    assert!((data.power_w() - 37_767.84).abs() < 0.01);
}

#[test]
fn a_billing_model_with_a_body_only_length_byte() {
    let received = read_one(&vector("jcpp-0a").bytes);
    assert!(received.body_length_quirk);
    let Message::Model(BillingModel {
        pile,
        model,
        rates,
        loss_ratio,
        slots,
    }) = Message::decode(&received.frame).expect("decodes")
    else {
        panic!("not a model");
    };
    assert_eq!(
        (pile.as_str(), model.as_str(), loss_ratio),
        ("20231212000010", "0001", 0)
    );
    assert_eq!(rates, [(75_000, 45_000); 4]);
    let expected: Vec<u8> = (0..48).map(|i| (i / 12) as u8).collect();
    assert_eq!(slots.to_vec(), expected);
}

#[test]
fn a_transaction_record_with_weekday_bits_and_zero_meters() {
    let Message::Transaction(record) = decode("jcpp-3b") else {
        panic!("not a record");
    };
    let Transaction {
        serial,
        pile,
        gun,
        start,
        end,
        periods,
        meter_start,
        meter_stop,
        energy,
        lossy_energy,
        amount,
        vin,
        start_type,
        trade_time,
        stop_reason,
        physical_card,
    } = *record;
    assert_eq!(serial, "20231212000010323239000000000000");
    assert_eq!((pile.as_str(), gun), ("20231212000010", 1));
    let shanghai = |t: chargemesh_ykc::Cp56Time| {
        t.to_utc()
            .expect("a valid time")
            .with_timezone(&chargemesh_ykc::fields::china())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    assert_eq!(shanghai(start), "2023-12-13 17:04:14");
    assert_eq!(shanghai(end), "2023-12-13 17:09:36");
    assert_eq!(shanghai(trade_time), "2023-12-13 17:09:36");
    assert_eq!(start.weekday, 3);
    let prices: Vec<u32> = periods.iter().map(|p| p.price).collect();
    assert_eq!(prices, [150_000, 130_000, 110_000, 90_000]);
    assert_eq!(
        (
            periods[3].energy,
            periods[3].lossy_energy,
            periods[3].amount
        ),
        (1_650, 1_650, 1_400)
    );
    assert_eq!((meter_start, meter_stop), (0, 0));
    assert_eq!((energy, lossy_energy, amount), (1_650, 1_650, 1_400));
    assert_eq!(vin, "");
    assert_eq!((start_type, stop_reason), (0x01, 0x40));
    assert_eq!(physical_card, [0; 8]);
}

#[test]
fn remote_start_and_its_reply() {
    let Message::RemoteStart(start) = decode("jcpp-34") else {
        panic!("not a remote start");
    };
    assert_eq!(start.serial, "00000000000012345678901234567890");
    assert_eq!((start.pile.as_str(), start.gun), ("20231212000010", 1));
    assert_eq!(start.logical_card, "5678901234567890");
    assert_eq!(start.balance, 10_000);
    assert_eq!(
        decode("jcpp-33"),
        Message::RemoteStartReply {
            serial: "00000000000012345678901234567890".into(),
            pile: "20231212000010".into(),
            gun: 1,
            result: 1,
            reason: 0
        }
    );
}

#[test]
fn time_sync_both_ways_in_china_standard_time() {
    let at = |id: &str| match decode(id) {
        Message::TimeSync { time, .. } | Message::TimeSyncReply { time, .. } => time
            .to_utc()
            .expect("a valid time")
            .with_timezone(&chargemesh_ykc::fields::china())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        other => panic!("{id}: {other:?}"),
    };
    assert_eq!(at("jcpp-56"), "2024-12-18 17:15:30");
    assert_eq!(at("jcpp-55"), "2025-08-21 12:12:12");
}

#[test]
fn card_authorisation_reply_of_the_spec() {
    let Message::CardStartReply(reply) = decode("spec-32") else {
        panic!("not a card reply");
    };
    assert_eq!(reply.serial, "32010200000001012018061219595785");
    assert_eq!((reply.pile.as_str(), reply.gun), ("32010200000001", 1));
    // Refused (0x00), for reason 0x01: the account does not exist.
    assert_eq!((reply.accepted, reply.reason), (0x00, 0x01));
    assert_eq!(
        (reply.logical_card.as_str(), reply.balance),
        ("0000000000000000", 0)
    );
}

#[test]
fn a_body_shorter_than_its_type_needs_is_an_error_naming_both() {
    // jcpp-32 carries 36 bytes where V1.6 defines 38.
    let frame = read_one(&vector("jcpp-32").bytes).frame;
    let error = Message::decode(&frame).expect_err("too short");
    assert_eq!(
        error.to_string(),
        "frame type 0x32: the body is 36 bytes, at least 38 expected"
    );
}

#[test]
fn an_encrypted_frame_is_refused_by_the_decoder_not_the_reader() {
    let mut frame = read_one(&vector("jcpp-03").bytes).frame;
    frame.encryption = 1;
    let bytes = frame.encode().expect("encodes");
    let received = read_one(&bytes);
    assert!(Message::decode(&received.frame).is_err());
}
