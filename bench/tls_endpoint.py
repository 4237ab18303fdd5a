"""A local TLS endpoint in front of the local stack, for the cold-start benchmark: the functions reach moto over
HTTPS as they reach AWS, and pay a handshake per service endpoint on a cold start.

`make_pki(directory)` makes a throwaway PKI with `openssl`, shaped like AWS's: a root CA, an intermediate CA and
an RSA-2048 server certificate for `localhost` and 127.0.0.1, served with the intermediate (the client verifies two
signatures, as against an AWS endpoint). It also writes the trust store the functions get through their normal
settings (`SSL_CERT_FILE` for the Rust SDK's rustls-native-certs, `AWS_CA_BUNDLE` for botocore): the machine's
own CA bundle with the throwaway root appended, so loading it costs what loading the system's trust store costs.
The keys never leave the directory and are made anew every run.

`python bench/tls_endpoint.py CERT_DIR UPSTREAM_PORT` serves TLS on a free port of 127.0.0.1 (and ::1), prints the port,
and pipes every connection to 127.0.0.1:UPSTREAM_PORT (moto) in plain HTTP until killed.
"""

import asyncio
import os
import ssl
import subprocess
import sys

SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def make_pki(directory):
    """Makes the PKI in `directory` (once) and returns the trust-store path."""
    os.makedirs(directory, exist_ok=True)
    path = lambda name: os.path.join(directory, name)
    trust = path("trust-store.pem")
    if os.path.exists(trust):
        return trust

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ecr-warden bench root",
            "-keyout", path("root.key"), "-out", path("root.pem"),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(path("ca.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
    with open(path("server.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=ecr-warden bench intermediate",
            "-keyout", path("intermediate.key"), "-out", path("intermediate.csr"))
    openssl("x509", "-req", "-in", path("intermediate.csr"), "-CA", path("root.pem"), "-CAkey", path("root.key"),
            "-CAcreateserial", "-days", "2", "-extfile", path("ca.ext"), "-out", path("intermediate.pem"))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", path("server.key"), "-out", path("server.csr"))
    openssl("x509", "-req", "-in", path("server.csr"), "-CA", path("intermediate.pem"), "-CAkey",
            path("intermediate.key"), "-CAcreateserial", "-days", "2", "-extfile", path("server.ext"),
            "-out", path("server.pem"))
    with open(path("chain.pem"), "w") as chain:
        chain.write(open(path("server.pem")).read() + open(path("intermediate.pem")).read())
    system = next((b for b in SYSTEM_BUNDLES if os.path.exists(b)), None)
    with open(trust + ".tmp", "w") as f:
        f.write((open(system).read() if system else "") + open(path("root.pem")).read())
    os.replace(trust + ".tmp", trust)
    return trust


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def serve(directory, upstream_port):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(directory, "chain.pem"), os.path.join(directory, "server.key"))

    async def accept(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    servers = [server]
    # `localhost` resolves to ::1 first on most machines: answer there too, so no connection starts with a refusal.
    try:
        servers.append(await asyncio.start_server(accept, "::1", port, ssl=context))
    except OSError:
        pass
    print(port, flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    make_pki(sys.argv[1])
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))
