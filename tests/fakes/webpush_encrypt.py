#!/usr/bin/env python3
"""webpush_encrypt.py — encrypts a Web Push message for a subscription as an application server does: RFC 8291
(Message Encryption for Web Push) over RFC 8188's aes128gcm content coding, written from the RFC text with the
standard library and python3-cryptography (only APIs of Debian bookworm's 38.x).

Usage:
  webpush_encrypt.py P256DH AUTH [--rs N] [--pad N] < plaintext > body
      P256DH and AUTH are the subscription's keys (base64url, as PushSubscription.toJSON() gives them). Writes the
      message body (header: salt, rs, idlen, keyid = a fresh ephemeral P-256 public key; then the records) to
      stdout. --rs sets the record size (default 4096; the plaintext is split over several records when it does not
      fit one), --pad adds N zero bytes of padding to the last record.
Exits 2 on bad arguments.
"""
import base64
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

TAG = 16


def b64url_decode(s):
    s = s.strip()
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hkdf(salt, ikm, info, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def encrypt(plaintext, ua_public, auth_secret, rs=4096, pad=0):
    if len(ua_public) != 65 or ua_public[0] != 4:
        raise ValueError("p256dh must be a 65-byte uncompressed P-256 point")
    if len(auth_secret) != 16:
        raise ValueError("auth must be 16 bytes")
    if rs < 18:
        raise ValueError("the record size must be at least 18")
    # RFC 8291 section 3.1: a fresh ECDH key pair for each message; its public key goes in keyid
    as_private = ec.generate_private_key(ec.SECP256R1())
    as_public = as_private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    ecdh_secret = as_private.exchange(ec.ECDH(), ua_key)
    # section 3.3-3.4: IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32)
    key_info = b"WebPush: info\x00" + ua_public + as_public
    ikm = hkdf(auth_secret, ecdh_secret, key_info, 32)
    # RFC 8188 section 2.2-2.3: content-encryption key and nonce from a random salt
    salt = os.urandom(16)
    cek = hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    aead = AESGCM(cek)
    # RFC 8188 section 2: each record holds up to rs - 16 bytes: data, a delimiter (1, or 2 in the last), padding
    room = rs - TAG - 1
    chunks = [plaintext[i:i + room] for i in range(0, len(plaintext), room)] or [b""]
    if len(chunks[-1]) + 1 + pad > rs - TAG:
        raise ValueError("the padding does not fit in the last record")
    out = [salt + struct.pack("!IB", rs, len(as_public)) + as_public]
    for seq, chunk in enumerate(chunks):
        last = seq == len(chunks) - 1
        record = chunk + (b"\x02" + b"\x00" * pad if last else b"\x01")
        iv = bytes(a ^ b for a, b in zip(nonce, seq.to_bytes(12, "big")))
        out.append(aead.encrypt(iv, record, None))
    return b"".join(out)


def main(argv):
    args, rs, pad = [], 4096, 0
    i = 1
    while i < len(argv):
        if argv[i] in ("--rs", "--pad") and i + 1 < len(argv):
            if argv[i] == "--rs":
                rs = int(argv[i + 1])
            else:
                pad = int(argv[i + 1])
            i += 2
        elif argv[i] in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            args.append(argv[i])
            i += 1
    if len(args) != 2:
        sys.stderr.write("usage: webpush_encrypt.py P256DH AUTH [--rs N] [--pad N] < plaintext > body\n")
        return 2
    try:
        body = encrypt(sys.stdin.buffer.read(), b64url_decode(args[0]), b64url_decode(args[1]), rs, pad)
    except ValueError as e:
        sys.stderr.write("webpush_encrypt.py: %s\n" % e)
        return 2
    sys.stdout.buffer.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
