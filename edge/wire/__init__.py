"""The wire: the serial frame format (defined once), the parser that never raises, transports
chosen by URL and the reader thread that drains them.
"""

from __future__ import annotations

from myoedge.ground.lazy import lazy_exports

_HOMES = {
    "Frame": "frame_format", "DeviceInfo": "frame_format", "FrameType": "frame_format",
    "encode_frame": "frame_format", "encode_device_info": "frame_format", "FrameParser": "protocol",
    "ParserStats": "protocol", "Reader": "reader", "ReaderStats": "reader", "Transport": "transport",
    "TransportStats": "transport", "SerialTransport": "transport",
    "open_transport": "transport", "crc32": "crc",
}
__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
