#!/usr/bin/python3
"""t/tools/h2req.py PORT [--cert F --key F] [-H 'name: value']...
[--no-authority] [--streams N] -- one HTTP/2 connection to 127.0.0.1:PORT
(TLS with ALPN h2, the server not verified), N streams with the same
headers (default 1).  Header names and values go out exactly as given,
duplicates too: python3-h2's own checks are off, so malformed requests
reach the server.  Prints ":status NNN" and the body of every stream."""
import argparse
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--cert")
ap.add_argument("--key")
ap.add_argument("-H", dest="headers", action="append", default=[])
ap.add_argument("--no-authority", action="store_true")
ap.add_argument("--streams", type=int, default=1)
a = ap.parse_args()

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
if a.cert:
    ctx.load_cert_chain(a.cert, a.key)
sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", a.port), 10))
sock.settimeout(10)
if sock.selected_alpn_protocol() != "h2":
    sys.exit("h2req: server did not select h2")

conn = h2.connection.H2Connection(h2.config.H2Configuration(
    client_side=True, validate_outbound_headers=False,
    normalize_outbound_headers=False, validate_inbound_headers=False))
conn.initiate_connection()
pseudo = {":method": "GET", ":scheme": "https", ":path": "/",
          ":authority": "127.0.0.1"}
if a.no_authority:
    del pseudo[":authority"]
heads = []
for h in a.headers:
    k, v = h[1:].split(":", 1) if h.startswith(":") else h.split(":", 1)
    k = (":" + k if h.startswith(":") else k).strip()
    if k in pseudo:
        pseudo[k] = v.strip()
    else:
        heads.append((k, v.strip()))
heads = list(pseudo.items()) + heads
streams = {}
for i in range(a.streams):
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, heads, end_stream=True)
    streams[sid] = {"status": None, "body": b""}
sock.sendall(conn.data_to_send())

open_streams = set(streams)
while open_streams:
    data = sock.recv(65536)
    if not data:
        break
    for ev in conn.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            streams[ev.stream_id]["status"] = dict(ev.headers).get(b":status")
        elif isinstance(ev, h2.events.DataReceived):
            streams[ev.stream_id]["body"] += ev.data
            conn.acknowledge_received_data(len(ev.data), ev.stream_id)
        elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
            open_streams.discard(ev.stream_id)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            open_streams.clear()
    sock.sendall(conn.data_to_send())

for sid in sorted(streams):
    st = streams[sid]["status"]
    print(":status %s" % (st.decode() if st else "none"))
    sys.stdout.write(streams[sid]["body"].decode("utf-8", "replace"))
