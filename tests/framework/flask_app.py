"""A small Flask upstream for tests/framework.rs.

Every view that runs appends "METHOD PATH" to the file named by the first argument, so the test
can tell exactly which views ran. The server binds 127.0.0.1:0 and prints "PORT <n>" once it
listens.
"""

import sys

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

RAN = sys.argv[1]
app = Flask(__name__)


def ran():
    with open(RAN, "a", encoding="utf-8") as f:
        f.write(f"{request.method} {request.path}\n")
    return jsonify(method=request.method, path=request.path)


@app.route("/public/<path:rest>", methods=["GET"])
def read(rest):
    return ran()


@app.route("/public/<path:rest>", methods=["DELETE"])
def delete(rest):
    return ran()


# Trailing-slash routes: Flask serves /public/admin/ and redirects /public/admin to it.
@app.route("/public/admin/", methods=["GET"])
def admin():
    return ran()


@app.route("/public/users/<int:user>/", methods=["GET"])
def user(user):
    return ran()


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()
