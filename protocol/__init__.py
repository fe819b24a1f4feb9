"""What a bot imports to talk to alphad: the messages, the codec and the clients."""

from alphad.protocol.errors import ERROR_CODES, AlphadError, ErrorCode
from alphad.protocol.messages import PROTOCOL_VERSION

__all__ = ["ERROR_CODES", "PROTOCOL_VERSION", "AlphadError", "ErrorCode"]
