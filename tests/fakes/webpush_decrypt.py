#!/usr/bin/env python3
"""webpush_decrypt.py — an independent Web Push receiver: decrypts an RFC 8291 / RFC 8188 (aes128gcm) message as a
browser would, written from the RFCs with python3-cryptography (the 38.x API of Debian bookworm).

Usage:
  webpush_decrypt.py < {"ua_private": b64url 32-byte scalar, "auth": b64url 16 bytes, "body": b64url message}
      prints the plaintext bytes on stdout; exits 1 with a message on stderr when the message does not decrypt.
  webpush_decrypt.py --selftest
      decrypts the example of RFC 8291 section 5 and checks its plaintext.
"""
import base64
import json
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class DecryptError(Exception):
    pass


def b64url_decode(s):
    if not isinstance(s, str) or "=" in s or any(c in s for c in "+/ \n"):
        raise DecryptError("not unpadded base64url: %r" % (s,))
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hkdf(salt, ikm, info, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def decrypt(ua_private_scalar, auth, body):
    """Returns the plaintext of an aes128gcm body encrypted for the UA key (a 32-byte scalar) and auth secret."""
    if len(ua_private_scalar) != 32:
        raise DecryptError("ua_private must be 32 bytes")
    if len(auth) != 16:
        raise DecryptError("auth must be 16 bytes")
    ua_key = ec.derive_private_key(int.from_bytes(ua_private_scalar, "big"), ec.SECP256R1())
    ua_public = ua_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    # RFC 8188 section 2.1: salt (16) | rs (uint32) | idlen (uint8) | keyid (idlen) | records
    if len(body) < 21:
        raise DecryptError("body of %d bytes is shorter than the aes128gcm header" % len(body))
    salt = body[:16]
    (rs,) = struct.unpack(">I", body[16:20])
    idlen = body[20]
    if rs < 18:
        raise DecryptError("record size %d is below 18" % rs)
    if len(body) < 21 + idlen:
        raise DecryptError("body ends inside the key id")
    keyid = body[21:21 + idlen]
    records = body[21 + idlen:]
    # RFC 8291 section 4: the key id is the application server's uncompressed P-256 public key
    if idlen != 65:
        raise DecryptError("keyid is %d bytes; RFC 8291 needs the 65-byte sender key" % idlen)
    try:
        as_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(keyid))
    except ValueError as e:
        raise DecryptError("keyid is not a P-256 point: %s" % e)

    # RFC 8291 section 3.3-3.4
    ecdh_secret = ua_key.exchange(ec.ECDH(), as_public)
    key_info = b"WebPush: info\x00" + ua_public + bytes(keyid)
    ikm = hkdf(auth, ecdh_secret, key_info, 32)

    # RFC 8188 section 2.2-2.3
    cek = hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce_base = hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)

    if len(records) == 0:
        raise DecryptError("no records")
    out = bytearray()
    seq = 0
    pos = 0
    aead = AESGCM(cek)
    while pos < len(records):
        record = records[pos:pos + rs]
        pos += rs
        last = pos >= len(records)
        if len(record) < 17:
            raise DecryptError("record %d is too short" % seq)
        nonce = (int.from_bytes(nonce_base, "big") ^ seq).to_bytes(12, "big")
        try:
            padded = aead.decrypt(nonce, bytes(record), None)
        except InvalidTag:
            raise DecryptError("record %d does not authenticate (wrong key, auth or bytes)" % seq)
        # RFC 8188 section 2: data || delimiter (0x01, or 0x02 for the last record) || zero padding
        stripped = padded.rstrip(b"\x00")
        if not stripped:
            raise DecryptError("record %d has no delimiter" % seq)
        delimiter = stripped[-1]
        if delimiter != (2 if last else 1):
            raise DecryptError("record %d has delimiter 0x%02x (last=%s)" % (seq, delimiter, last))
        if not last and len(record) != rs:
            raise DecryptError("record %d is shorter than rs but not last" % seq)
        out += stripped[:-1]
        seq += 1
    return bytes(out)


# RFC 8291 section 5 (and Appendix A): the example message and the receiver's keys.
RFC8291_EXAMPLE = {
    "ua_private": "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
    "ua_public": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
    "auth": "BTBZMqHH6r4Tts7J_aSIgg",
    "body": "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
            "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
            "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
    "plaintext": b"When I grow up, I want to be a watermelon",
}


def selftest():
    ex = RFC8291_EXAMPLE
    scalar = b64url_decode(ex["ua_private"])
    pub = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1()).public_key()
    if pub.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint) != b64url_decode(ex["ua_public"]):
        print("selftest: the UA private key does not give the RFC's public key", file=sys.stderr)
        return 1
    got = decrypt(scalar, b64url_decode(ex["auth"]), b64url_decode(ex["body"]))
    if got != ex["plaintext"]:
        print("selftest: got %r" % got, file=sys.stderr)
        return 1
    # a flipped bit must not decrypt
    body = bytearray(b64url_decode(ex["body"]))
    body[-1] ^= 1
    try:
        decrypt(scalar, b64url_decode(ex["auth"]), bytes(body))
        print("selftest: a tampered body decrypted", file=sys.stderr)
        return 1
    except DecryptError:
        pass
    print("selftest ok: %s" % got.decode())
    return 0


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        req = json.load(sys.stdin)
        plaintext = decrypt(b64url_decode(req["ua_private"]), b64url_decode(req["auth"]), b64url_decode(req["body"]))
    except (DecryptError, KeyError, TypeError, ValueError) as e:
        print("webpush_decrypt: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    sys.stdout.buffer.write(plaintext)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
