"""tlscerts.py - the certificates a TLS test needs, made with the openssl
command as docs/usage.md ("TLS") tells an operator to: a CA, the
destination's certificate (for 127.0.0.1 and localhost), the source's
client certificate, and the bad ones each refusal needs (another CA's,
an expired one, one for another host).  Each tls-creds directory is laid
out as QEMU's tls-creds-x509 (or tls-creds-psk) expects."""
import os
import shutil
import subprocess

CNF = """[ca]
default_ca = ca_default
[ca_default]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/new
serial = {dir}/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
organizationName = optional
commonName = supplied
"""


def _run(*args, cwd=None):
    r = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr))


class CA:
    def __init__(self, root, name):
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "new"))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(self.dir, "ca.cnf"), "w") as f:
            f.write(CNF.format(dir=self.dir))
        self.cert = os.path.join(self.dir, "ca-cert.pem")
        self.key = os.path.join(self.dir, "ca-key.pem")
        _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key,
             "-out", self.cert, "-days", "30", "-subj",
             "/O=ferry tests/CN=%s" % name)

    def issue(self, out_cert, out_key, subject, san=None, client=False,
              start=None, end=None):
        """A certificate for `subject`, valid from start to end
        (YYYYMMDDHHMMSSZ) or for 30 days from now."""
        csr = out_cert + ".csr"
        ext = ["-addext",
               "extendedKeyUsage=%s" % ("clientAuth" if client
                                        else "serverAuth")]
        if san:
            ext += ["-addext", "subjectAltName=%s" % san]
        _run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", out_key,
             "-out", csr, "-subj", subject, *ext)
        dates = (["-startdate", start, "-enddate", end] if start
                 else ["-days", "30"])
        _run("openssl", "ca", "-batch", "-notext", "-config",
             os.path.join(self.dir, "ca.cnf"), "-cert", self.cert,
             "-keyfile", self.key, "-in", csr, "-out", out_cert, *dates)
        os.unlink(csr)


SOURCE_SUBJECT = "CN=ferry-source,O=ferry tests"
OTHER_SUBJECT = "CN=someone-else,O=ferry tests"


def make(root):
    """Make every tls-creds directory under root; returns their paths by
    name:
      dst          the destination: CA, server certificate for
                   127.0.0.1/localhost (it demands client certificates)
      dst-noca     the same without ca-cert.pem: no client certificates
      dst-host     a server certificate for another host (10.9.9.9,
                   other.example)
      dst-expired  a server certificate that has expired
      src          the source: CA, client certificate SOURCE_SUBJECT
      src-other    a client certificate OTHER_SUBJECT (same CA)
      src-nocert   the CA only: no client certificate to show
      src-foreign  a client certificate of another CA
      src-expired  a client certificate that has expired
      src-wrongca  another CA's ca-cert.pem: the destination's
                   certificate is not trusted
      psk-a, psk-b keys.psk with the same identity, other keys
    """
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    ca = CA(root, "ca")
    other = CA(root, "otherca")
    d = {}

    def creds(name, ca_cert=ca.cert):
        p = os.path.join(root, name)
        os.makedirs(p)
        if ca_cert:
            shutil.copy(ca_cert, os.path.join(p, "ca-cert.pem"))
        d[name] = p
        return p

    local = "IP:127.0.0.1,DNS:localhost"
    past = ("20200101000000Z", "20200201000000Z")
    p = creds("dst")
    ca.issue(os.path.join(p, "server-cert.pem"),
             os.path.join(p, "server-key.pem"),
             "/O=ferry tests/CN=localhost", san=local)
    q = creds("dst-noca", None)
    for f in ("server-cert.pem", "server-key.pem"):
        shutil.copy(os.path.join(p, f), os.path.join(q, f))
    p = creds("dst-host")
    ca.issue(os.path.join(p, "server-cert.pem"),
             os.path.join(p, "server-key.pem"),
             "/O=ferry tests/CN=other.example",
             san="IP:10.9.9.9,DNS:other.example")
    p = creds("dst-expired")
    ca.issue(os.path.join(p, "server-cert.pem"),
             os.path.join(p, "server-key.pem"),
             "/O=ferry tests/CN=localhost", san=local, start=past[0],
             end=past[1])
    p = creds("src")
    ca.issue(os.path.join(p, "client-cert.pem"),
             os.path.join(p, "client-key.pem"),
             "/O=ferry tests/CN=ferry-source", client=True)
    p = creds("src-other")
    ca.issue(os.path.join(p, "client-cert.pem"),
             os.path.join(p, "client-key.pem"),
             "/O=ferry tests/CN=someone-else", client=True)
    creds("src-nocert")
    p = creds("src-foreign")
    other.issue(os.path.join(p, "client-cert.pem"),
                os.path.join(p, "client-key.pem"),
                "/O=ferry tests/CN=ferry-source", client=True)
    p = creds("src-expired")
    ca.issue(os.path.join(p, "client-cert.pem"),
             os.path.join(p, "client-key.pem"),
             "/O=ferry tests/CN=ferry-source", client=True,
             start=past[0], end=past[1])
    p = creds("src-wrongca", other.cert)
    ca.issue(os.path.join(p, "client-cert.pem"),
             os.path.join(p, "client-key.pem"),
             "/O=ferry tests/CN=ferry-source", client=True)
    for name, key in (("psk-a", "6a" * 32), ("psk-b", "5b" * 32)):
        p = creds(name, None)
        with open(os.path.join(p, "keys.psk"), "w") as f:
            f.write("ferry:%s\n" % key)
    return d
