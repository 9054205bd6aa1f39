"""The client your agent uses: ``dse.connect(...)`` then ``predict`` / ``apredict`` on the live
registry and ``feedback`` / ``afeedback`` when the outcome is known.

In-process (a store URL, an LM spec, your app) or over HTTP (``base_url`` and the server's
predict token), with the same methods and the same results. Remote failures raise a
:class:`RemoteError` subclass named for the HTTP meaning; local ones the dse error that caused
them (``DecodeError``, ``LMError``, ``ReceiptNotFoundError`` ...).
"""

from dse.client._client import Client, connect
from dse.client._http import (
    RemoteAuthError,
    RemoteConflictError,
    RemoteError,
    RemoteInvalidInputError,
    RemoteNotFoundError,
    RemoteUnavailableError,
)
from dse.client._models import ClientPrediction
from dse.rollout import FeedbackResult

__all__ = [
    "Client",
    "ClientPrediction",
    "FeedbackResult",
    "RemoteAuthError",
    "RemoteConflictError",
    "RemoteError",
    "RemoteInvalidInputError",
    "RemoteNotFoundError",
    "RemoteUnavailableError",
    "connect",
]
