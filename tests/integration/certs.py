"""X.509 certificates for the TLS tests, made with openssl: a CA, and
certificates it signs, in the layout qemu, libnbd and sved read."""
import os
import subprocess

from harness import check


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"openssl {args}: {r.stderr}")


def make_ca(dir_, name):
    os.makedirs(dir_, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{dir_}/ca-key.pem", "-out", f"{dir_}/ca-cert.pem",
            "-days", "2", "-subj", f"/CN={name}")


def issue(ca_dir, out_dir, prefix, cn, usage, san=None):
    """A certificate for `cn` signed by the CA in `ca_dir`, as qemu and
    libnbd name the files: PREFIX-cert.pem, PREFIX-key.pem (and ca-cert.pem)."""
    os.makedirs(out_dir, exist_ok=True)
    ext = os.path.join(out_dir, f"{prefix}.ext")
    with open(ext, "w") as f:
        f.write(f"extendedKeyUsage={usage}\nkeyUsage=digitalSignature\n")
        if san:
            f.write(f"subjectAltName={san}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{out_dir}/{prefix}-key.pem", "-out", f"{out_dir}/{prefix}.csr",
            "-subj", f"/CN={cn}")
    openssl("x509", "-req", "-in", f"{out_dir}/{prefix}.csr", "-CA", f"{ca_dir}/ca-cert.pem",
            "-CAkey", f"{ca_dir}/ca-key.pem", "-CAcreateserial", "-out",
            f"{out_dir}/{prefix}-cert.pem", "-days", "2", "-extfile", ext)
    with open(f"{ca_dir}/ca-cert.pem") as src, open(f"{out_dir}/ca-cert.pem", "w") as dst:
        dst.write(src.read())
