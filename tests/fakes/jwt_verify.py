#!/usr/bin/env python3
"""jwt_verify.py — an independent JWT checker (RFC 7515 compact JWS, RFC 7518 ES256 / RS256), as APNs, Google's
OAuth2 server and Web Push services check what they receive; python3-cryptography only (Debian bookworm's 38.x API).

Usage:
  jwt_verify.py PUBLIC_KEY.pem [TOKEN]     verify with a PEM public key (SubjectPublicKeyInfo)
  jwt_verify.py --k B64URL_POINT [TOKEN]   verify ES256 with a raw uncompressed P-256 point (VAPID's k=)
TOKEN is read from stdin when not given. Prints {"header": ..., "claims": ...} as JSON on success; exits 1 with a
message on stderr when the token is malformed, the algorithm does not fit the key, or the signature is bad.
"""
import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


class JwtError(Exception):
    pass


def b64url_decode(s):
    if "=" in s or any(c in s for c in "+/ \n"):
        raise JwtError("segment is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except ValueError as e:
        raise JwtError("bad base64url: %s" % e)


def verify(token, key):
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("a compact JWS has 3 parts, this has %d" % len(parts))
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as e:
        raise JwtError("header or claims are not JSON: %s" % e)
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("header and claims must be JSON objects")
    sig = b64url_decode(parts[2])
    signing_input = (parts[0] + "." + parts[1]).encode("ascii")
    alg = header.get("alg")
    try:
        if alg == "ES256":
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise JwtError("ES256 needs a P-256 key")
            # RFC 7518 section 3.4: the signature is R || S, 32 bytes each, not DER
            if len(sig) != 64:
                raise JwtError("an ES256 signature is 64 bytes, this is %d" % len(sig))
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        elif alg == "RS256":
            if not isinstance(key, rsa.RSAPublicKey):
                raise JwtError("RS256 needs an RSA key")
            key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise JwtError("unsupported alg %r" % (alg,))
    except InvalidSignature:
        raise JwtError("bad %s signature" % alg)
    return header, claims


def main(argv):
    args = argv[1:]
    try:
        if len(args) >= 2 and args[0] == "--k":
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(args[1]))
            rest = args[2:]
        elif len(args) >= 1 and not args[0].startswith("-"):
            with open(args[0], "rb") as f:
                key = serialization.load_pem_public_key(f.read())
            rest = args[1:]
        else:
            print(__doc__, file=sys.stderr)
            return 2
        if len(rest) > 1:
            print(__doc__, file=sys.stderr)
            return 2
        token = rest[0] if rest else sys.stdin.read().strip()
        header, claims = verify(token, key)
    except (JwtError, ValueError, OSError) as e:
        print("jwt_verify: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps({"header": header, "claims": claims}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
