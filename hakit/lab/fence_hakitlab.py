#!/usr/bin/python3
"""fence_hakitlab: the hakit namespace lab's fence agent (RHCS style). hakit lab fence agent.

Installed as /usr/sbin/fence_hakitlab by ``hakit lab up`` (removed by ``hakit lab down``).
Pacemaker runs it inside a lab node with ``key=value`` lines on stdin (``action=...``,
``plug=NODE``, ``socket=...``); it cannot kill another node's processes from inside its own
PID namespace, so it asks the lab's fence helper on the host, through a unix socket in a
folder every node sees. Standard library only: it runs with the system's python3.

Actions: metadata, monitor, list, status, off, on, reboot, validate-all.
``reboot`` powers the node off and leaves it off (like a PDU with power-on disabled): the lab
brings it back with ``hakit lab restart-node NODE`` (or ``action=on``).
Exit codes: 0 done (status: on), 1 failed, 2 status: off.
"""

import json
import socket
import sys

DEFAULT_SOCKET = "/run/hakit-lab/fence.sock"
ACTIONS = ("on", "off", "reboot", "status", "list", "monitor", "metadata", "validate-all")

METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_hakitlab" shortdesc="Fence agent of the hakit namespace lab">
<longdesc>Powers a node of the hakit namespace lab off for real (every process of the node
killed, its link removed) through the lab's fence helper on the host. reboot leaves the node
off; on (or hakit lab restart-node) starts it again with its data kept.</longdesc>
<vendor-url>https://github.com/hakit</vendor-url>
<parameters>
  <parameter name="action" unique="0" required="0">
    <getopt mixed="-o, --action=[action]"/>
    <content type="string" default="reboot"/>
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="plug" unique="0" required="0" obsoletes="port">
    <getopt mixed="-n, --plug=[node]"/>
    <content type="string"/>
    <shortdesc lang="en">The lab node to act on</shortdesc>
  </parameter>
  <parameter name="port" unique="0" required="0" deprecated="1">
    <getopt mixed="-n, --plug=[node]"/>
    <content type="string"/>
    <shortdesc lang="en">The lab node to act on (old name of plug)</shortdesc>
  </parameter>
  <parameter name="socket" unique="0" required="0">
    <getopt mixed="--socket=[path]"/>
    <content type="string" default="/run/hakit-lab/fence.sock"/>
    <shortdesc lang="en">Unix socket of the lab's fence helper</shortdesc>
  </parameter>
  <parameter name="password" unique="0" required="0">
    <getopt mixed="-p, --password=[password]"/>
    <content type="string"/>
    <shortdesc lang="en">The device's password (the lab's: fence.token beside the socket)</shortdesc>
  </parameter>
  <parameter name="nodename" unique="0" required="0">
    <content type="string"/>
    <shortdesc lang="en">The node running the agent (set by Pacemaker)</shortdesc>
  </parameter>
</parameters>
<actions>
  <action name="on" automatic="0"/>
  <action name="off"/>
  <action name="reboot"/>
  <action name="status"/>
  <action name="list"/>
  <action name="monitor"/>
  <action name="metadata"/>
  <action name="validate-all"/>
</actions>
</resource-agent>
"""


def options(argv, stdin_text):
    """Parameters from stdin (key=value lines) and from -o/-n/--socket arguments."""
    opts = {}
    for line in stdin_text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            opts[key.strip()] = value.strip()
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-o", "--action") and args:
            opts["action"] = args.pop(0)
        elif arg.startswith("--action="):
            opts["action"] = arg.split("=", 1)[1]
        elif arg in ("-n", "--plug") and args:
            opts["plug"] = args.pop(0)
        elif arg.startswith("--plug="):
            opts["plug"] = arg.split("=", 1)[1]
        elif arg.startswith("--socket="):
            opts["socket"] = arg.split("=", 1)[1]
        elif arg.startswith("--password="):
            opts["password"] = arg.split("=", 1)[1]
    if "plug" not in opts and "port" in opts:
        opts["plug"] = opts["port"]
    return opts


def ask(path, request, timeout=60.0):
    """One request to the helper (``path``: its unix socket, or ``tcp:ADDRESS:PORT`` from a VM
    lab's guest); its JSON answer."""
    if path.startswith("tcp:"):
        _, address, port = path.split(":")
        family, target = socket.AF_INET, (address, int(port))
    else:
        family, target = socket.AF_UNIX, path
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(target)
        conn.sendall((json.dumps(request) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.decode() or "{}")


def expected_password(sock):
    """The password the lab's device wants (``fence.token`` beside the socket), None: any."""
    import os

    try:
        with open(os.path.join(os.path.dirname(sock), "fence.token")) as fh:
            return fh.read().strip()
    except OSError:
        return None


def main(argv):
    interactive = sys.stdin is None or sys.stdin.isatty()
    opts = options(argv, "" if interactive else sys.stdin.read())
    action = opts.get("action", "reboot")
    if action == "metadata":
        sys.stdout.write(METADATA)
        return 0
    if action not in ACTIONS:
        sys.stderr.write("fence_hakitlab: unknown action {!r} (one of {})\n".format(action, ", ".join(ACTIONS)))
        return 1
    sock = opts.get("socket") or DEFAULT_SOCKET
    # over TCP (a VM lab) the helper checks the password itself: it travels with the request
    expected = None if sock.startswith("tcp:") else expected_password(sock)
    if expected is not None and opts.get("password") != expected:
        # as a real device refuses a wrong login: the lab proves the password reaches the agent
        # (Pacemaker passes it from its cibsecret file, the CIB holding lrm://)
        sys.stderr.write("fence_hakitlab: wrong or missing password (the device wants the secrets file's "
                         "fencing.lab.password)\n")
        return 1
    if action == "validate-all":
        return 0
    plug = opts.get("plug")
    if action in ("on", "off", "reboot", "status") and not plug:
        sys.stderr.write(f"fence_hakitlab: action {action} needs plug=NODE\n")
        return 1
    try:
        request = {"action": action, "plug": plug, "nodename": opts.get("nodename")}
        if sock.startswith("tcp:"):
            request["password"] = opts.get("password")
        answer = ask(sock, request)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"fence_hakitlab: the lab's fence helper did not answer: {exc}\n")
        return 1
    if not answer.get("ok"):
        sys.stderr.write("fence_hakitlab: {}\n".format(answer.get("error", "failed")))
        return 1
    if action == "list":
        for name in answer.get("nodes", []):
            sys.stdout.write(f"{name},{name}\n")
    if action == "status":
        sys.stdout.write("Status: %s\n" % ("ON" if answer.get("power") == "on" else "OFF"))
        return 0 if answer.get("power") == "on" else 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
