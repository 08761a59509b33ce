//! The frame reader as a pile's TCP stream feeds it: split and coalesced reads, garbage between
//! frames, both CRC orders, and a stream of noise it must not hold; then a round-trip property
//! over the messages a platform exchanges.

use chargemesh_ykc::frame::MAX_FRAME;
use chargemesh_ykc::records::{Login, PeriodUse, Realtime, Transaction};
use chargemesh_ykc::{Cp56Time, CrcOrder, Frame, FrameReader, Message};
use proptest::prelude::*;

fn heartbeat(seq: u8) -> Vec<u8> {
    Message::Heartbeat {
        pile: "20231212000010".into(),
        gun: 1,
        status: 0,
    }
    .to_frame([seq, 0])
    .and_then(|f| f.encode())
    .expect("encodes")
}

fn drain(reader: &mut FrameReader) -> Vec<Frame> {
    std::iter::from_fn(|| reader.next_frame().map(|r| r.frame)).collect()
}

#[test]
fn frames_split_at_every_byte_arrive_whole() {
    let bytes = heartbeat(7);
    for cut in 0..bytes.len() {
        let mut reader = FrameReader::new();
        reader.extend(&bytes[..cut]);
        assert_eq!(reader.next_frame(), None, "cut at {cut}");
        reader.extend(&bytes[cut..]);
        let frames = drain(&mut reader);
        assert_eq!(frames.len(), 1, "cut at {cut}");
        assert_eq!(frames[0].sequence, [7, 0]);
    }
}

#[test]
fn coalesced_frames_with_garbage_between_them_all_arrive_in_order() {
    let mut stream = vec![0x00, 0xFF, 0x68, 0x68, 0x01];
    for seq in 0..20u8 {
        stream.extend(heartbeat(seq));
        // Noise, including a stray start byte with a plausible length.
        stream.extend([0x68, 0x0D, 0x12, 0x34][..usize::from(seq % 5)].iter());
    }
    let mut reader = FrameReader::new();
    reader.extend(&stream);
    let frames = drain(&mut reader);
    let sequences: Vec<u8> = frames.iter().map(|f| f.sequence[0]).collect();
    assert_eq!(sequences, (0..20).collect::<Vec<u8>>());
    assert!(reader.skipped() > 0);
}

#[test]
fn a_stray_start_byte_before_a_frame_does_not_stall_it() {
    // 0x68 with a length pointing past the frame that follows: a strict reader would wait for
    // bytes the pile never sends (it waits for our reply).
    let mut stream = vec![0x68, 0xF0];
    stream.extend(heartbeat(1));
    let mut reader = FrameReader::new();
    reader.extend(&stream);
    assert_eq!(drain(&mut reader).len(), 1);
}

#[test]
fn both_crc_orders_are_read_and_told_apart() {
    let frame = Message::ModelRequest {
        pile: "20231212000010".into(),
    }
    .to_frame([1, 0])
    .expect("a frame");
    for order in [CrcOrder::LowFirst, CrcOrder::HighFirst] {
        let mut reader = FrameReader::new();
        reader.extend(&frame.encode_with(order).expect("encodes"));
        let received = reader.next_frame().expect("a frame");
        assert_eq!(received.crc_order, order);
        assert_eq!(received.frame, frame);
    }
}

#[test]
fn a_corrupted_frame_is_skipped_and_the_next_one_read() {
    let mut bad = heartbeat(1);
    bad[8] ^= 0x01;
    let mut stream = bad;
    stream.extend(heartbeat(2));
    let mut reader = FrameReader::new();
    reader.extend(&stream);
    let frames = drain(&mut reader);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].sequence, [2, 0]);
}

#[test]
fn noise_is_never_held_beyond_one_frame() {
    let mut reader = FrameReader::new();
    let mut state = 0x1234_5678_u32;
    for _ in 0..2_000 {
        let chunk: Vec<u8> = (0..64)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                // Plenty of start bytes among the noise.
                if state.is_multiple_of(7) {
                    0x68
                } else {
                    state as u8
                }
            })
            .collect();
        reader.extend(&chunk);
        while reader.next_frame().is_some() {}
        assert!(reader.held() <= MAX_FRAME + 4, "held {}", reader.held());
    }
    assert!(reader.skipped() > 100_000);
}

#[test]
fn a_body_too_long_for_one_frame_is_refused_when_encoding() {
    let frame = Frame::new([0, 0], 0x13, vec![0; 252]);
    assert!(frame.encode().is_err());
    assert!(Frame::new([0, 0], 0x13, vec![0; 251]).encode().is_ok());
}

fn digits(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, n)
        .prop_map(|d| d.iter().map(|x| char::from(b'0' + x)).collect())
}

fn hexes(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..16, n).prop_map(|d| {
        d.iter()
            .map(|x| {
                char::from_digit(u32::from(*x), 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase()
            })
            .collect()
    })
}

fn time() -> impl Strategy<Value = Cp56Time> {
    (
        0u16..60_000,
        0u8..60,
        0u8..24,
        1u8..29,
        0u8..8,
        1u8..13,
        0u8..100,
        any::<bool>(),
    )
        .prop_map(
            |(millis, minute, hour, day, weekday, month, year, invalid)| Cp56Time {
                millis,
                minute,
                hour,
                day,
                weekday,
                month,
                year,
                invalid,
                summer: false,
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            digits(14),
            0u8..2,
            1u8..5,
            0x0Fu8..0x11,
            "[A-Za-z0-9.]{0,8}",
            hexes(20),
            any::<u8>()
        )
            .prop_map(
                |(pile, pile_type, guns, protocol, software, iccid, carrier)| Message::Login(
                    Login {
                        pile,
                        pile_type,
                        guns,
                        protocol,
                        software,
                        network: 0,
                        iccid,
                        carrier,
                    }
                )
            ),
        (digits(14), 1u8..100, 0u8..2).prop_map(|(pile, gun, status)| Message::Heartbeat {
            pile,
            gun,
            status
        }),
        (digits(14), hexes(4)).prop_map(|(pile, model)| Message::ModelCheck { pile, model }),
        (
            hexes(32),
            digits(14),
            1u8..100,
            0u8..4,
            any::<[u16; 4]>(),
            any::<[u32; 3]>(),
            any::<u16>()
        )
            .prop_map(
                |(
                    serial,
                    pile,
                    gun,
                    status,
                    [voltage, current, minutes, remaining_minutes],
                    [energy, lossy_energy, amount],
                    faults,
                )| {
                    Message::Realtime(Realtime {
                        serial,
                        pile,
                        gun,
                        status,
                        returned: 1,
                        plugged: 1,
                        voltage,
                        current,
                        gun_temperature: 70,
                        cable_code: [0; 8],
                        soc: 50,
                        battery_temperature: 75,
                        minutes,
                        remaining_minutes,
                        energy,
                        lossy_energy,
                        amount,
                        faults,
                    })
                }
            ),
        (
            hexes(32),
            digits(14),
            1u8..100,
            time(),
            time(),
            any::<[u32; 4]>(),
            0u64..(1 << 40),
            "[A-Z0-9]{0,17}",
            any::<u8>()
        )
            .prop_map(
                |(serial, pile, gun, start, end, [a, b, c, d], meter, vin, stop_reason)| {
                    let period = PeriodUse {
                        price: a,
                        energy: b,
                        lossy_energy: c,
                        amount: d,
                    };
                    Message::Transaction(Box::new(Transaction {
                        serial,
                        pile,
                        gun,
                        start,
                        end,
                        periods: [period; 4],
                        meter_start: meter,
                        meter_stop: meter,
                        energy: b,
                        lossy_energy: c,
                        amount: d,
                        vin,
                        start_type: 1,
                        trade_time: end,
                        stop_reason,
                        physical_card: [1; 8],
                    }))
                }
            ),
        (hexes(32), any::<u8>())
            .prop_map(|(serial, result)| Message::TransactionAck { serial, result }),
        (digits(14), time()).prop_map(|(pile, time)| Message::TimeSync { pile, time }),
        (digits(14), 1u8..100).prop_map(|(pile, gun)| Message::RemoteStop { pile, gun }),
        (0x60u8..0x80, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(kind, body)| {
            Message::Other {
                kind: kind | 0x01,
                body,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn every_message_survives_encoding_framing_and_a_split_read(
        message in message(),
        order in prop_oneof![Just(CrcOrder::LowFirst), Just(CrcOrder::HighFirst)],
        seq in any::<[u8; 2]>(),
        cut in any::<prop::sample::Index>(),
        noise in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let bytes = message.to_frame(seq).and_then(|f| f.encode_with(order)).expect("encodes");
        let mut stream = noise.into_iter().filter(|b| *b != 0x68).collect::<Vec<u8>>();
        stream.extend(&bytes);
        let cut = cut.index(stream.len() + 1);
        let mut reader = FrameReader::new();
        reader.extend(&stream[..cut]);
        let mut frames: Vec<_> = std::iter::from_fn(|| reader.next_frame()).collect();
        reader.extend(&stream[cut..]);
        frames.extend(std::iter::from_fn(|| reader.next_frame()));
        prop_assert_eq!(frames.len(), 1);
        // A CRC whose two bytes are equal reads the same in either order.
        let [low, high] = chargemesh_ykc::frame::crc16(&bytes[2..bytes.len() - 2]).to_le_bytes();
        if low != high {
            prop_assert_eq!(frames[0].crc_order, order);
        }
        prop_assert_eq!(frames[0].frame.sequence, seq);
        prop_assert_eq!(Message::decode(&frames[0].frame), Ok(message));
    }
}
