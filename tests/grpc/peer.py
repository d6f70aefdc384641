"""A real gRPC server and client (grpcio) for tests/grpc.rs, with raw-bytes messages so that
no code generation is needed.

server [--tls CERT KEY]: serves every `/<package.Service>/<Method>` on 127.0.0.1:0 and prints
    `PORT <n>`, then one JSON line per event it wants the test to know about.
client --target HOST:PORT --ca CA --cert CERT --key KEY CALL...: makes each CALL
    (`unary:/pkg.Svc/Method`, `stream:/pkg.Svc/Method`, `deadline:/pkg.Svc/Method:SECONDS`)
    through an mTLS channel and prints one JSON line per call.
"""

import argparse
import json
import sys
import time
from concurrent import futures

import grpc


def emit(**fields):
    print(json.dumps(fields), flush=True)


def metadata_dict(md):
    return {k: (v if isinstance(v, str) else v.decode("latin-1")) for k, v in (md or ())}


class Handler(grpc.GenericRpcHandler):
    """Dispatches on the method name, whatever the service."""

    def service(self, details):
        method = details.method.rsplit("/", 1)[-1]
        unary = {
            "Get": self.get,
            "Missing": self.missing,
            "Slow": self.slow,
            "Delete": self.get,
            "Reset": self.get,
        }
        if method in unary:
            return grpc.unary_unary_rpc_method_handler(unary[method])
        if method == "Watch":
            return grpc.unary_stream_rpc_method_handler(self.watch)
        return None

    def seen(self, context, name):
        md = metadata_dict(context.invocation_metadata())
        emit(event="call", method=name, agent=md.get("x-warden-agent"),
             time_remaining=context.time_remaining())

    def get(self, request, context):
        self.seen(context, "Get")
        context.set_trailing_metadata((("x-served-by", "peer"),))
        return b"item:" + request

    def missing(self, request, context):
        self.seen(context, "Missing")
        context.set_trailing_metadata((("x-detail", "gone"),))
        context.abort(grpc.StatusCode.NOT_FOUND, "no such item: " + request.decode())

    def slow(self, request, context):
        self.seen(context, "Slow")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            if not context.is_active():
                emit(event="cancelled", method="Slow")
                return b""
            time.sleep(0.02)
        emit(event="finished", method="Slow")
        return b"late"

    def watch(self, request, context):
        self.seen(context, "Watch")
        for i in range(3):
            if i:
                time.sleep(0.7)
            yield b"update %d" % i


def serve(args):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((Handler(),))
    if args.tls:
        cert, key = (open(p, "rb").read() for p in args.tls)
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("PORT %d" % port, flush=True)
    # Ends when the test closes our standard input (or kills us).
    sys.stdin.read()
    server.stop(0)


def call(channel, spec):
    kind, rest = spec.split(":", 1)
    timeout = None
    if kind == "deadline":
        rest, seconds = rest.rsplit(":", 1)
        timeout = float(seconds)
    out = {"call": spec}
    started = time.monotonic()
    try:
        if kind == "stream":
            arrivals, messages = [], []
            for msg in channel.unary_stream(rest)(b"42", timeout=timeout):
                arrivals.append(round((time.monotonic() - started) * 1000))
                messages.append(msg.decode())
            out.update(code="OK", messages=messages, arrivals_ms=arrivals)
        else:
            reply, state = channel.unary_unary(rest).with_call(b"42", timeout=timeout)
            out.update(code="OK", messages=[reply.decode()],
                       trailing=metadata_dict(state.trailing_metadata()))
    except grpc.RpcError as e:
        out.update(code=e.code().name, details=e.details(),
                   trailing=metadata_dict(e.trailing_metadata()),
                   initial=metadata_dict(e.initial_metadata()))
    out["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    emit(**out)


def client(args):
    read = lambda p: open(p, "rb").read()
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca), private_key=read(args.key),
        certificate_chain=read(args.cert))
    with grpc.secure_channel(args.target, creds) as channel:
        for spec in args.calls:
            call(channel, spec)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    c = sub.add_parser("client")
    for flag in ("--target", "--ca", "--cert", "--key"):
        c.add_argument(flag, required=True)
    c.add_argument("calls", nargs="+")
    args = p.parse_args()
    serve(args) if args.mode == "server" else client(args)


if __name__ == "__main__":
    main()
