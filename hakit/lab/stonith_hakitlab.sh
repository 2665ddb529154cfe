#!/bin/sh
# hakit lab stonith plugin: heartbeat's STONITH (cluster-glue "external" plugin protocol)
# through the lab's fence helper, by way of the lab's fence agent. Installed by 'hakit lab up'
# at /usr/lib/stonith/plugins/external/hakitlab, removed by 'hakit lab down'.
# heartbeat calls it as: hakitlab ACTION [HOST], its one parameter in the environment ($socket).
agent=/usr/sbin/fence_hakitlab
ask() {
    printf 'action=%s\nplug=%s\nsocket=%s\n' "$1" "$2" "${socket:-/run/hakit-lab/fence.sock}" | "$agent"
}
# heartbeat lower-cases host names; lab node names are lower case
host=$(printf '%s' "$2" | tr 'A-Z' 'a-z')
# heartbeat retries a failed fence every 5 s, for ever, and so fences a peer it declared dead
# from behind a cut link the moment the link is back, though the peer is alive and heard again.
# A node this node's heartbeat hears is never fenced: the request fails (heartbeat retries).
heard() {
    cl_status nodestatus "$1" 2>/dev/null | grep -qx active
}
case "$1" in
    gethosts) ask list "" | cut -d, -f1 ;;
    reset|off)   # the lab powers a node off; restart-node brings it back
        if heard "$host"; then
            echo "hakitlab: $host is heard again (heartbeat: active): not fenced" >&2
            exit 1
        fi
        ask off "$host" ;;
    on) ask on "$host" ;;
    status) ask monitor "" ;;
    getconfignames) echo socket ;;
    getinfo-devid|getinfo-devname) echo "hakit lab fence helper" ;;
    getinfo-devdescr) echo "Powers a hakit lab node off through the lab's fence helper on the host" ;;
    getinfo-devurl) echo "docs/lab.md (hakit)" ;;
    getinfo-xml) cat <<'XML'
<parameters>
<parameter name="socket" unique="0" required="0">
<content type="string" default="/run/hakit-lab/fence.sock"/>
<shortdesc lang="en">the lab fence helper's socket, as the nodes see it</shortdesc>
</parameter>
</parameters>
XML
    ;;
    *) exit 1 ;;
esac
