"""An OCPP charge point written with someone else's implementation (the `ocpp` package over
`websockets`), driven by tests/ocpp.rs against the gateway. It prints one JSON object per line
for each thing it saw; the Rust side reads them, acts through the platform's API, and checks.

    charge_point.py --version 1.6|2.0.1 --url wss://...|ws://... [--ca CA] \
        [--cert CERT --key KEY | --user ID --password SECRET] \
        [--scenario full|boot|tokens|quiet] [--tokens A,B,...] [--quiet-s SECONDS]

Security profile 3 presents a client certificate, profile 2 HTTP Basic over TLS, profile 1
HTTP Basic over plain TCP (ws://). The quiet scenario boots, reports connector 1 Available and
then sends nothing for --quiet-s seconds (the websockets library still answers pings).
"""

import argparse
import asyncio
import base64
import datetime
import json
import ssl
import sys

import websockets
from ocpp.routing import on


def say(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def energy(wh, context=None, v201=False):
    value = {"value": wh if v201 else str(wh), "measurand": "Energy.Active.Import.Register"}
    if v201:
        value["unit_of_measure"] = {"unit": "Wh"}
    else:
        value["unit"] = "Wh"
    if context:
        value["context"] = context
    return [{"timestamp": now(), "sampled_value": [value]}]


def make_v16(connection):
    from ocpp.v16 import ChargePoint, call, call_result

    class Cp(ChargePoint):
        commands = asyncio.Queue()

        @on("RemoteStartTransaction")
        def remote_start(self, id_tag, connector_id=None, **_):
            self.commands.put_nowait(("start", connector_id or 1, id_tag))
            return call_result.RemoteStartTransaction(status="Accepted")

        @on("RemoteStopTransaction")
        def remote_stop(self, transaction_id, **_):
            self.commands.put_nowait(("stop", transaction_id, None))
            return call_result.RemoteStopTransaction(status="Accepted")

        @on("ChangeAvailability")
        def availability(self, connector_id, type, **_):
            self.commands.put_nowait(("availability", connector_id, type))
            return call_result.ChangeAvailability(status="Accepted")

        @on("TriggerMessage")
        def trigger(self, requested_message, **_):
            return call_result.TriggerMessage(status="Accepted")

    cp = Cp("cp", connection)

    async def boot():
        r = await cp.call(call.BootNotification(charge_point_model="EVB-7", charge_point_vendor="Chargemesh-Test"))
        return r.status, r.interval

    async def full():
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=now()))
        await cp.call(call.StatusNotification(connector_id=0, error_code="NoError", status="Available"))
        hb = await cp.call(call.Heartbeat())
        say("heartbeat", current_time=hb.current_time)
        auth = await cp.call(call.Authorize(id_tag="CARD-0042"))
        say("authorize", status=auth.id_tag_info["status"])
        start_at = now()
        first = await cp.call(call.StartTransaction(connector_id=1, id_tag="CARD-0042", meter_start=1000, timestamp=start_at))
        # A reboot: the same start again, answered with the same transaction.
        again = await cp.call(call.StartTransaction(connector_id=1, id_tag="CARD-0042", meter_start=1000, timestamp=start_at))
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging", timestamp=now()))
        for wh in (5000, 9000):
            await cp.call(call.MeterValues(connector_id=1, transaction_id=first.transaction_id, meter_value=energy(wh)))
        stop_at = now()
        for _ in range(2):
            await cp.call(call.StopTransaction(meter_stop=11000, timestamp=stop_at, transaction_id=first.transaction_id, reason="EVDisconnected"))
        say("transaction", ids=[first.transaction_id, again.transaction_id])
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=now()))
        say("ready")
        running = None
        while True:
            kind, arg, extra = await asyncio.wait_for(cp.commands.get(), 60)
            if kind == "start":
                r = await cp.call(call.StartTransaction(connector_id=arg, id_tag=extra, meter_start=20000, timestamp=now()))
                running = r.transaction_id
                say("remote_started", transaction_id=running, id_tag=extra)
            elif kind == "stop":
                await cp.call(call.StopTransaction(meter_stop=26000, timestamp=now(), transaction_id=arg, reason="Remote"))
                say("remote_stopped", transaction_id=arg, matches=arg == running)
            elif kind == "availability":
                say("availability", connector_id=arg, type=extra)
                return

    async def tokens(names):
        statuses = []
        for name in names:
            auth = await cp.call(call.Authorize(id_tag=name))
            statuses.append(auth.id_tag_info["status"])
        say("authorized", statuses=statuses)
        # A short transaction with the first token.
        r = await cp.call(call.StartTransaction(connector_id=1, id_tag=names[0], meter_start=1000, timestamp=now()))
        await cp.call(call.StopTransaction(meter_stop=3000, timestamp=now(), transaction_id=r.transaction_id, reason="Local"))
        say("charged", transaction_id=r.transaction_id)
        # A stop of a transaction this platform never saw start (its id names connector 1).
        ghost = (4242 << 7) | 1
        r = await cp.call(call.StopTransaction(meter_stop=7000, timestamp=now(), transaction_id=ghost, reason="Local"))
        say("stopped_unknown", status=(r.id_tag_info or {}).get("status"))
        await availability_loop(cp)

    async def quiet(seconds):
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=now()))
        say("ready")
        await asyncio.sleep(seconds)

    return cp, boot, full, tokens, quiet


async def availability_loop(cp):
    """Answers every command; says each availability asked, until one makes it operative again.

    Commands reach a pile at least once: the suspension may come twice (resent while its answer
    was on the way) before the resumption, so counting two would stop short of it.
    """
    while True:
        kind, arg, extra = await asyncio.wait_for(cp.commands.get(), 60)
        if kind == "availability":
            say("availability", connector_id=arg, type=extra)
            if extra == "Operative":
                return


def make_v201(connection):
    from ocpp.v201 import ChargePoint, call, call_result

    class Cp(ChargePoint):
        commands = asyncio.Queue()

        @on("RequestStartTransaction")
        def remote_start(self, id_token, remote_start_id, evse_id=None, **_):
            self.commands.put_nowait(("start", (evse_id or 1, remote_start_id), id_token["id_token"]))
            return call_result.RequestStartTransaction(status="Accepted")

        @on("RequestStopTransaction")
        def remote_stop(self, transaction_id, **_):
            self.commands.put_nowait(("stop", transaction_id, None))
            return call_result.RequestStopTransaction(status="Accepted")

        @on("ChangeAvailability")
        def availability(self, operational_status, evse=None, **_):
            self.commands.put_nowait(("availability", (evse or {}).get("id", 0), operational_status))
            return call_result.ChangeAvailability(status="Accepted")

        @on("TriggerMessage")
        def trigger(self, requested_message, **_):
            return call_result.TriggerMessage(status="Accepted")

    cp = Cp("cp", connection)

    async def boot():
        r = await cp.call(call.BootNotification(charging_station={"model": "EVB-9", "vendor_name": "Chargemesh-Test"}, reason="PowerUp"))
        return r.status, r.interval

    async def event(kind, seq, tx, **extra):
        return await cp.call(call.TransactionEvent(event_type=kind, timestamp=now(), trigger_reason=extra.pop("trigger", "Authorized"), seq_no=seq, transaction_info={"transaction_id": tx, **extra.pop("info", {})}, **extra))

    async def full():
        await cp.call(call.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1))
        hb = await cp.call(call.Heartbeat())
        say("heartbeat", current_time=hb.current_time)
        auth = await cp.call(call.Authorize(id_token={"id_token": "CARD-0042", "type": "ISO14443"}))
        say("authorize", status=auth.id_token_info["status"])
        token = {"id_token": "CARD-0042", "type": "ISO14443"}
        await event("Started", 0, "TX-1", info={"charging_state": "Charging"}, id_token=token, evse={"id": 1, "connector_id": 1}, meter_value=energy(1000, "Transaction.Begin", True))
        await event("Updated", 1, "TX-1", trigger="MeterValuePeriodic", meter_value=energy(5000, "Sample.Periodic", True))
        for _ in range(2):
            await event("Ended", 2, "TX-1", trigger="EVCommunicationLost", info={"stopped_reason": "EVDisconnected"}, meter_value=energy(11000, "Transaction.End", True))
        say("transaction", ids=["TX-1", "TX-1"])
        await cp.call(call.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1))
        say("ready")
        running = None
        while True:
            kind, arg, extra = await asyncio.wait_for(cp.commands.get(), 60)
            if kind == "start":
                evse, remote_id = arg
                running = "TX-2"
                await event("Started", 0, running, trigger="RemoteStart", info={"charging_state": "Charging", "remote_start_id": remote_id}, id_token={"id_token": extra, "type": "Central"}, evse={"id": evse, "connector_id": 1}, meter_value=energy(20000, "Transaction.Begin", True))
                say("remote_started", transaction_id=running, id_tag=extra)
            elif kind == "stop":
                await event("Ended", 1, arg, trigger="RemoteStop", info={"stopped_reason": "Remote"}, meter_value=energy(26000, "Transaction.End", True))
                say("remote_stopped", transaction_id=arg, matches=arg == running)
            elif kind == "availability":
                say("availability", connector_id=arg, type=extra)
                return

    async def tokens(names):
        statuses = []
        for name in names:
            auth = await cp.call(call.Authorize(id_token={"id_token": name, "type": "ISO14443"}))
            statuses.append(auth.id_token_info["status"])
        say("authorized", statuses=statuses)
        # A short transaction with the first token.
        token = {"id_token": names[0], "type": "ISO14443"}
        await event("Started", 0, "TX-T", info={"charging_state": "Charging"}, id_token=token, evse={"id": 1, "connector_id": 1}, meter_value=energy(1000, "Transaction.Begin", True))
        await event("Ended", 1, "TX-T", trigger="StopAuthorized", info={"stopped_reason": "Local"}, meter_value=energy(3000, "Transaction.End", True))
        say("charged", transaction_id="TX-T")
        # The end of a transaction this platform never saw start.
        r = await event("Ended", 3, "TX-GHOST", trigger="EVCommunicationLost", info={"stopped_reason": "Local"}, evse={"id": 1, "connector_id": 1}, meter_value=energy(7000, "Transaction.End", True))
        say("stopped_unknown", status=(r.id_token_info or {}).get("status"))
        await availability_loop(cp)

    async def quiet(seconds):
        await cp.call(call.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1))
        say("ready")
        await asyncio.sleep(seconds)

    return cp, boot, full, tokens, quiet


async def malformed(url, subprotocol, context):
    """Frames no schema allows, on a raw connection: each is answered, and the connection stays."""
    frames = {
        "not_json": "[2, \"m1\", \"Heartbeat\"",
        "not_array": "{\"a\": 1}",
        "unknown_action": json.dumps([2, "m2", "FlyToTheMoon", {}]),
        "wrong_type": json.dumps([2, "m3", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Available"}] if subprotocol == "ocpp1.6" else [2, "m3", "StatusNotification", {"timestamp": now(), "connectorStatus": "Available", "evseId": "one", "connectorId": 1}]),
        "missing_field": json.dumps([2, "m4", "StatusNotification", {"connectorId": 1}] if subprotocol == "ocpp1.6" else [2, "m4", "StatusNotification", {"evseId": 1}]),
        "bad_value": json.dumps([2, "m5", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}] if subprotocol == "ocpp1.6" else [2, "m5", "StatusNotification", {"timestamp": now(), "connectorStatus": "Dancing", "evseId": 1, "connectorId": 1}]),
        "heartbeat_after": json.dumps([2, "m6", "Heartbeat", {}]),
    }
    answers = {}
    async with websockets.connect(url, subprotocols=[subprotocol], ssl=context) as ws:
        for name, frame in frames.items():
            await ws.send(frame)
            answers[name] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    say("malformed", answers=answers)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--version", choices=["1.6", "2.0.1"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--scenario", choices=["full", "boot", "tokens", "quiet"], default="full")
    p.add_argument("--tokens", default="")
    p.add_argument("--quiet-s", type=float, default=15.0)
    a = p.parse_args()
    context = None
    if a.url.startswith("wss:"):
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=a.ca)
        if a.cert:
            context.load_cert_chain(a.cert, a.key)
    headers = {}
    if a.user is not None:
        basic = base64.b64encode(f"{a.user}:{a.password}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    subprotocol = "ocpp1.6" if a.version == "1.6" else "ocpp2.0.1"
    try:
        connection = await websockets.connect(a.url, subprotocols=[subprotocol], ssl=context, additional_headers=headers)
    except Exception as e:  # the refusal is what some scenarios expect
        say("refused", error=f"{type(e).__name__}: {e}")
        say("done")
        return
    say("connected", subprotocol=connection.subprotocol)
    cp, boot, full, tokens, quiet = (make_v16 if a.version == "1.6" else make_v201)(connection)
    runner = asyncio.create_task(cp.start())
    try:
        status, interval = await boot()
        say("boot", status=status, interval=interval)
        if a.scenario == "full" and status == "Accepted":
            await full()
        elif a.scenario == "tokens" and status == "Accepted":
            await tokens([t for t in a.tokens.split(",") if t])
        elif a.scenario == "quiet" and status == "Accepted":
            await quiet(a.quiet_s)
    finally:
        runner.cancel()
        await connection.close()
    if a.scenario == "full":
        await malformed(a.url, subprotocol, context)
    say("done")


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
