#!/usr/bin/python3
"""dkim_interop.py -- the dkimpy (python3-dkim) side of the DKIM interoperability tests.

  keys DIR                 RSA 2048 (openssl) and Ed25519 (python3-nacl) keys for dkimpy
                           signing: DIR/rsa.pem, DIR/ed.seed, and their DNS TXT values in
                           DIR/records.json {"rsa": "v=DKIM1; k=rsa; p=...", "ed": "..."}
  sign DIR ALGO CANON SELECTOR DOMAIN < message > signed
                           ALGO rsa-sha256 | rsa-sha1 | ed25519-sha256; CANON header/body
  verify ZONE.json < message
                           verifies every DKIM-Signature with dkimpy, the key records taken
                           from the JSON zone (no DNS); prints one "pass"/"fail" per signature
                           (top first) and exits 0 when all pass
"""
import base64
import json
import subprocess
import sys

import dkim
import nacl.signing


def keys(d):
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", d + "/rsa.pem"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    der = subprocess.run(["openssl", "pkey", "-in", d + "/rsa.pem", "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    sk = nacl.signing.SigningKey.generate()
    with open(d + "/ed.seed", "wb") as f:
        f.write(base64.b64encode(bytes(sk)))
    rec = {"rsa": "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode(),
           "ed": "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(sk.verify_key)).decode()}
    with open(d + "/records.json", "w") as f:
        json.dump(rec, f)


def sign(d, algo, canon, selector, domain):
    msg = sys.stdin.buffer.read()
    if algo.startswith("ed25519"):
        key = open(d + "/ed.seed", "rb").read()
    else:
        key = open(d + "/rsa.pem", "rb").read()
    h, b = canon.split("/")
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key,
                    canonicalize=(h.encode(), b.encode()), signature_algorithm=algo.encode(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    sys.stdout.buffer.write(sig + msg)


def verify(zone_file):
    zone = json.load(open(zone_file))
    zone = {k.lower().rstrip("."): v for k, v in zone.items()}

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        v = zone.get(n.lower().rstrip("."))
        if isinstance(v, dict):
            v = v.get("TXT")
        if not isinstance(v, list) or not v:
            return None
        return v[0].encode()

    msg = sys.stdin.buffer.read()
    d = dkim.DKIM(msg)
    n = sum(1 for k, _ in d.headers if k.lower() == b"dkim-signature")
    ok = n > 0
    for i in range(n):
        r = d.verify(idx=i, dnsfunc=dnsfunc)
        print("pass" if r else "fail")
        ok = ok and r
    sys.exit(0 if ok else 1)


def main():
    cmd = sys.argv[1]
    if cmd == "keys":
        keys(sys.argv[2])
    elif cmd == "sign":
        sign(*sys.argv[2:7])
    elif cmd == "verify":
        verify(sys.argv[2])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
