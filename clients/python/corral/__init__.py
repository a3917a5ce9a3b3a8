"""corral — the Python SDK of Corral: an agent's own email address, phone number, inbox and secrets.

    from corral import CorralClient
    c = CorralClient()                 # CORRAL_URL, CORRAL_TOKEN, CORRAL_IDENTITY from the environment
    signup(c.email)
    code = c.inbox.wait_for(subject_contains="verify", timeout=120).otp

Standard library only; Python 3.9 or newer.
"""

from .client import MAX_WAIT, CorralClient, Inbox, Secrets
from .errors import CorralError, CorralTimeout
from .models import Identity, Message, Secret, SecretInfo
from .otp import extract_otp, extract_otp_candidates

__version__ = "0.1.0"

__all__ = ["CorralClient", "Inbox", "Secrets", "CorralError", "CorralTimeout", "Identity", "Message", "Secret",
           "SecretInfo", "extract_otp", "extract_otp_candidates", "MAX_WAIT", "__version__"]
