"""A charging station for the harness's tests that the harness did not write the OCPP of: framing,
routing, schema validation and the message classes are the ``ocpp`` library's (Mobility House),
the connection is ``websockets``'. It stands in for a lab charger: a rig file of kind lab points
the mock CSMS at it, and the suites run against it as a black box.

    python tests/ocpp/lab_station.py run --url ws://HOST:PORT/CP-ID --password PW --control-port N [--quirk Q]
    python tests/ocpp/lab_station.py control --port N plug|unplug [CONNECTOR] | token TOKEN

OCPP 2.0.1, one EVSE with one connector. It boots, heartbeats, reports its connector, answers
GetVariables/SetVariables, Reset (reconnects and boots again), TriggerMessage,
Request{Start,Stop}Transaction, ChangeAvailability, and runs transactions when told through its
control port what happens at the plug (``plug``, ``unplug``, ``token``: the hands a lab rig's
operator command gives it). ``--quirk`` makes it misbehave as field chargers have:

- ``stay-rejected``: after a BootNotification answered Rejected it never recovers: it ignores the
  later Accepted and answers no call;
- ``string-error-details``: its CALLERRORs carry ErrorDetails as a JSON string, not an object;
- ``no-boot``: it connects without a BootNotification, as a station accepted earlier may.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as _dt
import json
import logging
import sys
import uuid

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import connect

log = logging.getLogger("lab-station")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Connection:
    """The websocket as the ocpp library sees it, with the quirks that change what goes out."""

    def __init__(self, ws, quirks: set[str]) -> None:
        self.ws = ws
        self.quirks = quirks
        self.deaf = False  # stay-rejected: nothing is answered any more

    async def recv(self):
        while True:
            message = await self.ws.recv()
            if not self.deaf:
                return message

    async def send(self, message: str) -> None:
        if "string-error-details" in self.quirks:
            frame = json.loads(message)
            if frame[0] == 4:
                frame[4] = json.dumps(frame[4])  # a JSON string where OCPP-J wants an object
                message = json.dumps(frame)
        await self.ws.send(message)


class LabStation(ChargePoint):
    def __init__(self, station_id: str, connection: Connection, runner: "Runner") -> None:
        super().__init__(station_id, connection)
        self.runner = runner
        self.variables = {("OCPPCommCtrlr", "HeartbeatInterval"): "300",
                          ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
                          ("AuthCtrlr", "AuthorizeRemoteStart"): "false"}

    @on(Action.get_variables)
    async def on_get_variables(self, get_variable_data, **_):
        results = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            value = self.variables.get(key)
            results.append({"attribute_status": "Accepted" if value is not None else "UnknownVariable",
                            "component": item["component"], "variable": item["variable"],
                            **({"attribute_value": value} if value is not None else {})})
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    async def on_set_variables(self, set_variable_data, **_):
        results = []
        for item in set_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            known = key in self.variables
            if known:
                self.variables[key] = item["attribute_value"]
                if key == ("OCPPCommCtrlr", "HeartbeatInterval"):
                    self.runner.heartbeat_interval = float(item["attribute_value"])
            results.append({"attribute_status": "Accepted" if known else "UnknownVariable",
                            "component": item["component"], "variable": item["variable"]})
        return call_result.SetVariables(set_variable_result=results)

    @on(Action.reset)
    async def on_reset(self, type, **_):
        asyncio.get_running_loop().call_later(0.3, self.runner.reboot)
        return call_result.Reset(status="Accepted")

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message, **_):
        if requested_message not in ("Heartbeat", "StatusNotification", "BootNotification"):
            return call_result.TriggerMessage(status="NotImplemented")
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(
            self.runner.send_triggered(requested_message)))
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.change_availability)
    async def on_change_availability(self, operational_status, **_):
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.request_start_transaction)
    async def on_request_start(self, id_token, remote_start_id, **_):
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(
            self.runner.authorized(id_token["id_token"], remote_start_id=remote_start_id)))
        return call_result.RequestStartTransaction(status="Accepted")

    @on(Action.request_stop_transaction)
    async def on_request_stop(self, transaction_id, **_):
        if self.runner.transaction != transaction_id:
            return call_result.RequestStopTransaction(status="Rejected")
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(
            self.runner.end_transaction("Remote", "RemoteStop")))
        return call_result.RequestStopTransaction(status="Accepted")


class Runner:
    """The station's life: connect, boot, heartbeat, transactions; reconnect after a reset."""

    def __init__(self, args) -> None:
        self.args = args
        self.quirks = set(args.quirk)
        self.station_id = args.url.rstrip("/").rsplit("/", 1)[1]
        self.heartbeat_interval = 300.0
        self.station: LabStation | None = None
        self.connection: Connection | None = None
        self.plugged = False
        self.token: str | None = None
        self.transaction: str | None = None
        self.seq = 0
        self.booted_once = False
        self._reboot = asyncio.Event()

    def reboot(self) -> None:
        self._reboot.set()

    async def run(self) -> None:
        control = await asyncio.start_server(self.control, "127.0.0.1", self.args.control_port)
        async with control:
            while True:
                self._reboot.clear()
                try:
                    await self.session()
                except (OSError, Exception) as exc:  # refused, dropped: try again, as a charger does
                    log.warning("connection: %r", exc)
                    await asyncio.sleep(1.0)

    async def session(self) -> None:
        headers = {}
        if self.args.password:
            secret = base64.b64encode(f"{self.station_id}:{self.args.password}".encode()).decode()
            headers["Authorization"] = f"Basic {secret}"
        async with connect(self.args.url, subprotocols=["ocpp2.0.1"], additional_headers=headers) as ws:
            self.connection = Connection(ws, self.quirks)
            self.station = LabStation(self.station_id, self.connection, self)
            listening = asyncio.ensure_future(self.station.start())
            try:
                if "no-boot" not in self.quirks or self.booted_once:
                    await self.boot()
                self.booted_once = True
                await self.status()
                beating = asyncio.ensure_future(self.heartbeat())
                await asyncio.wait([listening, asyncio.ensure_future(self._reboot.wait())],
                                   return_when=asyncio.FIRST_COMPLETED)
                beating.cancel()
            finally:
                listening.cancel()

    async def boot(self) -> None:
        while True:
            answer = await self.station.call(call.BootNotification(
                charging_station={"model": "Lab Station", "vendor_name": "Independent"}, reason="PowerUp"))
            if answer.status == "Accepted":
                self.heartbeat_interval = float(answer.interval or 300)
                return
            if answer.status == "Rejected" and "stay-rejected" in self.quirks:
                # repeats once after the interval, takes nothing in any more, answers nothing
                await asyncio.sleep(answer.interval or 1)
                await self.connection.ws.send(json.dumps([2, str(uuid.uuid4()), "BootNotification", {
                    "chargingStation": {"model": "Lab Station", "vendorName": "Independent"}, "reason": "PowerUp"}]))
                self.connection.deaf = True
                await asyncio.Event().wait()
            await asyncio.sleep(answer.interval or 1)

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self.station.call(call.Heartbeat())

    async def status(self) -> None:
        await self.station.call(call.StatusNotification(
            timestamp=_now(), connector_status="Occupied" if self.plugged else "Available", evse_id=1, connector_id=1))

    async def send_triggered(self, message: str) -> None:
        if message == "Heartbeat":
            await self.station.call(call.Heartbeat())
        elif message == "StatusNotification":
            await self.status()
        else:
            await self.boot()

    # -- at the plug -----------------------------------------------------------------------

    async def authorized(self, token: str, *, remote_start_id: int | None = None) -> None:
        self.token = token
        await self.maybe_start("RemoteStart" if remote_start_id is not None else "Authorized", remote_start_id)

    async def maybe_start(self, trigger: str, remote_start_id: int | None = None) -> None:
        if self.transaction is not None or not (self.plugged and self.token):
            return
        self.transaction = uuid.uuid4().hex[:16]
        self.seq = 0
        await self.event("Started", trigger, charging_state="Charging", remote_start_id=remote_start_id)

    async def event(self, kind: str, trigger: str, *, charging_state: str | None = None, stopped: str | None = None,
                    remote_start_id: int | None = None) -> None:
        info = {"transaction_id": self.transaction,
                **({"charging_state": charging_state} if charging_state else {}),
                **({"stopped_reason": stopped} if stopped else {}),
                **({"remote_start_id": remote_start_id} if remote_start_id is not None else {})}
        await self.station.call(call.TransactionEvent(
            event_type=kind, timestamp=_now(), trigger_reason=trigger, seq_no=self.seq, transaction_info=info,
            **({"id_token": {"id_token": self.token, "type": "ISO14443"}} if kind == "Started" and self.token else {}),
            **({"evse": {"id": 1, "connector_id": 1}} if kind == "Started" else {})))
        self.seq += 1

    async def end_transaction(self, stopped: str, trigger: str) -> None:
        if self.transaction is None:
            return
        await self.event("Ended", trigger, stopped=stopped)
        self.transaction, self.token = None, None

    async def control(self, reader, writer) -> None:
        words = (await reader.readline()).decode().split()
        try:
            if words[:1] == ["plug"]:
                self.plugged = True
                await self.status()
                await self.maybe_start("CablePluggedIn")
            elif words[:1] == ["unplug"]:
                self.plugged = False
                await self.end_transaction("EVDisconnected", "EVCommunicationLost")
                await self.status()
            elif words[:1] == ["token"]:
                answer = await self.station.call(call.Authorize(id_token={"id_token": words[1], "type": "ISO14443"}))
                if answer.id_token_info["status"] == "Accepted":
                    self.token = words[1]
                    await self.maybe_start("Authorized")
            else:
                raise ValueError(f"unknown control command {words}")
            writer.write(b"ok\n")
        except Exception as exc:  # the operator command reports it and exits non-zero
            writer.write(f"error {exc!r}\n".encode())
        await writer.drain()
        writer.close()


async def _control(port: int, words: list[str]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((" ".join(words) + "\n").encode())
    await writer.drain()
    answer = (await reader.readline()).decode().strip()
    print(answer)
    return 0 if answer == "ok" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--url", required=True)
    run.add_argument("--password")
    run.add_argument("--control-port", type=int, required=True)
    run.add_argument("--quirk", action="append", default=[],
                     choices=("stay-rejected", "string-error-details", "no-boot"))
    control = sub.add_parser("control")
    control.add_argument("--port", type=int, required=True)
    control.add_argument("words", nargs="+")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if args.command == "control":
        return asyncio.run(_control(args.port, args.words))
    try:
        asyncio.run(Runner(args).run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
