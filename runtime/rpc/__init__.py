"""Run an artifact, and ONNX Runtime, on a remote device through TVM RPC (tracker or direct server), with bounded waits everywhere.

endpoint.py says where the device is, tracker.py speaks TVM's tracker protocol, session.py holds a connection
(watchdog.py bounds each call), remote_module.py runs the artifact there, device_ort.py runs ONNX Runtime
there; board_functions.py is the board's side of it and board_server.py the board's RPC server.
"""

from tvmdeploy.runtime.rpc.board_functions import BOARD_INFO_FUNCTION
from tvmdeploy.runtime.rpc.device_ort import DeviceOrt, device_threads, set_device_threads
from tvmdeploy.runtime.rpc.endpoint import RpcEndpoint
from tvmdeploy.runtime.rpc.remote_module import RemoteModule
from tvmdeploy.runtime.rpc.session import DEFAULT_CALL_TIMEOUT_S, DEFAULT_CONNECT_TIMEOUT_S, RemoteSession, connect
from tvmdeploy.runtime.rpc.tracker import TRACKER_START_WAIT_S, TrackerNotListening, servers_for_key, tracker_summary, wait_for_tracker

__all__ = [
    "BOARD_INFO_FUNCTION",
    "DEFAULT_CALL_TIMEOUT_S",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "TRACKER_START_WAIT_S",
    "DeviceOrt",
    "RemoteModule",
    "RemoteSession",
    "RpcEndpoint",
    "TrackerNotListening",
    "connect",
    "device_threads",
    "servers_for_key",
    "set_device_threads",
    "tracker_summary",
    "wait_for_tracker",
]
