"""The fault campaign's checker, on observations written by hand: each rule must catch what it
names, and stay quiet on a healthy pair."""

from __future__ import annotations

from hakit.lab.audit import Auditor


def doc(**nodes):
    return {"nodes": {name: {"generation": g, "vip": vip, "writable": w} for name, (g, vip, w) in nodes.items()}}


def rules(auditor: Auditor) -> list[str]:
    return [v.rule for v in auditor.violations]


def test_two_writable_nodes_in_any_sample_are_a_violation():
    a = Auditor([["n1", "n2"]])
    a.writable_samples(1, 120, [])
    assert a.ok and a.checks["one writable node"] == 120
    a.writable_samples(2, 5, [(12.5, ["n1", "n2"])])
    assert rules(a) == ["one writable node"] and "n1 and n2" in str(a.violations[0])


def test_the_generation_never_decreases_and_the_vip_follows_the_one_writable_node():
    a = Auditor([["n1", "n2"]])
    a.status(1, doc(n1=(1, True, True), n2=(1, False, False)), settled=True)
    a.status(2, doc(n1=(None, False, None), n2=(2, False, True)), settled=False)  # mid-failover: VIP nowhere
    assert a.ok and a.highest_generation == 2
    a.status(3, doc(n1=(1, True, True), n2=(None, False, None)), settled=True)  # the old one is back: generation 1
    assert rules(a) == ["generation never decreases"]
    a.status(4, doc(n1=(2, True, False), n2=(2, False, True)), settled=True)
    assert rules(a)[1:] == ["the VIP follows the writable node"]
    a.status(5, doc(n1=(2, True, True), n2=(2, True, False)), settled=True)
    assert rules(a)[2:] == ["VIP on exactly one node"]


def test_lost_acknowledged_writes_and_unequal_tables_are_violations():
    a = Auditor([["n1", "n2"]])
    a.acknowledged_writes(1, "n2", [])
    a.checksums(1, {"n1": {"opsview.a": 5, "opsview.b": 7}, "n2": {"opsview.a": 5, "opsview.b": 7}})
    assert a.ok
    a.acknowledged_writes(2, "n2", list(range(1, 15)))
    a.checksums(2, {"n1": {"opsview.a": 5, "opsview.b": 7}, "n2": {"opsview.a": 5, "opsview.b": 8}})
    a.checksums(3, {"n1": {"opsview.a": 5}, "n2": {}})  # a table missing on one side
    assert rules(a) == ["acknowledged writes kept", "tables equal after resync", "tables equal after resync"]
    assert "14 ids acknowledged to the writer missing on n2: 1, 2" in str(a.violations[0])
    assert "…" in str(a.violations[0])
    assert "opsview.b" in str(a.violations[1]) and "opsview.a" in str(a.violations[2])


def test_an_operation_left_open_in_the_journal_did_not_converge():
    a = Auditor([["n1", "n2"]])
    a.operation(4, "takeover --node n2", -9, rerun_exit=0)
    assert a.ok
    a.operation(5, "takeover --node n2", -9, rerun_exit=0, left_open="takeover")
    assert rules(a) == ["operations converge"] and "still holds an open takeover" in str(a.violations[0])


def test_the_vip_on_two_nodes_in_any_sample_is_a_violation_and_every_sample_counts():
    a = Auditor([["n1", "n2"]])
    a.vip_samples(1, 120, [])
    assert a.ok and a.checks["VIP on one node at every sample"] == 120
    a.vip_samples(2, 80, [(12.5, ["n1", "n2"])])
    a.acknowledged_writes(2, "n2", [7], writer="the writer inside n1")
    assert rules(a) == ["VIP on one node at every sample", "acknowledged writes kept"]
    assert a.checks["VIP on one node at every sample"] == 200
    assert "the VIP on n1 and n2 at once (t=12.500)" in str(a.violations[0])
    assert "1 ids acknowledged to the writer inside n1 missing on n2: 7" in str(a.violations[1])


CRM_MON = """<pacemaker-result api-version="2.25" request="crm_mon -1 --output-as=xml">
  <resources>
    <resource id="fence-lab" resource_agent="stonith:fence_hakitlab" role="Started" active="true" nodes_running_on="1">
      <node name="n2" id="2" cached="true"/>
    </resource>
    <group id="hakit" number_resources="2">
      <resource id="db-role" resource_agent="ocf:hakit:mariadb-role" role="Started" active="true"
                nodes_running_on="{db}">
        {db_nodes}
      </resource>
      <resource id="vip" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true" nodes_running_on="1">
        <node name="n1" id="1" cached="true"/>
      </resource>
    </group>
    <clone id="ping-clone" multi_state="false" unique="false">
      <resource id="ping" resource_agent="ocf:pacemaker:ping" role="Started" active="true" nodes_running_on="1">
        <node name="n1" id="1" cached="true"/>
      </resource>
      <resource id="ping" resource_agent="ocf:pacemaker:ping" role="Started" active="true" nodes_running_on="1">
        <node name="n2" id="2" cached="true"/>
      </resource>
    </clone>
  </resources>
</pacemaker-result>"""


def test_a_resource_active_on_two_nodes_is_a_violation_but_clone_instances_are_not():
    a = Auditor([["n1", "n2"]])
    a.resources(1, CRM_MON.format(db=1, db_nodes='<node name="n1" id="1"/>'))
    assert a.ok and a.checks["no resource active twice"] == 1
    a.resources(2, CRM_MON.format(db=2, db_nodes='<node name="n1" id="1"/><node name="n2" id="2"/>'))
    assert rules(a) == ["no resource active twice"] and "db-role active on 2 nodes (n1, n2)" in str(a.violations[0])
    a.resources(3, "<pacemaker-result><resources>")
    assert rules(a)[1:] == ["no resource active twice"] and "does not parse" in str(a.violations[1])


def test_an_operation_converges_or_it_is_a_violation():
    a = Auditor([["n1", "n2"]])
    a.operation(1, "takeover", 0)
    a.operation(2, "resync", 9, rerun_exit=0, rerun_changed=False)  # interrupted, re-run converged
    assert a.ok and a.checks["operations converge"] == 2
    a.operation(3, "switchover", 1)
    a.operation(4, "resync", 9, rerun_exit=1)
    a.operation(5, "takeover", 9, rerun_exit=0, rerun_changed=True)
    assert rules(a) == ["operations converge"] * 3
    assert a.summary()["violations"][0] == "step 3: operations converge: switchover exited 1 and was not run again"


def test_a_full_disk_must_be_named_by_status_while_it_lasts():
    auditor = Auditor([["n1", "n2"]])
    full = {"free_bytes": 0, "size_bytes": 4 << 30, "full": True}
    auditor.full_disk_named(1, "n1", {"state": "degraded", "reason": "n1's data disk is full",
                                      "nodes": {"n1": {"reachable": True, "disk": full}}})
    assert auditor.violations == [] and auditor.checks["status names a full disk"] == 1
    # what the first campaigns saw: commits stalled, status said healthy
    auditor.full_disk_named(2, "n1", {"state": "healthy", "reason": "n1 is active",
                                      "nodes": {"n1": {"reachable": True, "disk": full}}})
    auditor.full_disk_named(3, "n1", {"state": "healthy", "nodes": {"n1": {"reachable": True, "disk": None}}})
    assert [v.step for v in auditor.violations] == [2, 3]
    # a node fenced meanwhile cannot be read: not judged, not counted
    auditor.full_disk_named(4, "n1", {"state": "degraded", "nodes": {"n1": {"reachable": False}}})
    assert auditor.checks["status names a full disk"] == 3 and len(auditor.violations) == 2


def test_a_node_being_resynced_must_never_be_writable_nor_silent():
    auditor = Auditor([["n1", "n2"]])
    rule = "a node being resynced is never promoted"
    auditor.resync_never_promoted(1, "n2", [(float(t), True, False) for t in range(20)], changing=0.5)
    assert auditor.violations == [] and auditor.checks[rule] == 20
    auditor.resync_never_promoted(2, "n2", [(1.0, True, False), (2.0, True, True)], changing=0.5)
    auditor.resync_never_promoted(3, "n2", [(1.0, True, None)])  # a server that does not answer may take writes
    # what the campaign found: no marker yet, but the resync had stopped replication (changing)
    auditor.resync_never_promoted(4, "n2", [(1.0, False, False), (3.0, False, True)], changing=2.0)
    # promoted before the resync changed anything, or after it finished: a standby like any other
    auditor.resync_never_promoted(5, "n2", [(1.0, False, True)], changing=2.0)
    auditor.resync_never_promoted(6, "n2", [(5.0, False, True)], changing=2.0, finished=4.0)
    auditor.resync_never_promoted(7, "n2", [(5.0, False, True)])
    assert [(v.step, v.rule) for v in auditor.violations] == [(2, rule), (3, rule), (4, rule)]
    assert "writable" in auditor.violations[0].detail and "not answering" in auditor.violations[1].detail
    assert auditor.checks[rule] == 28


def test_the_monitoring_state_must_reach_the_standby_in_time_and_be_on_the_new_active():
    a = Auditor([["n1", "n2"]])
    a.monitoring_state(1, "n2", shipped=True, kept=True)
    assert a.violations == []
    a.monitoring_state(2, "n2", shipped=True, kept=None)  # no monitoring master to ask: not judged here
    assert a.violations == [] and a.checks["monitoring state kept"] == 1
    a.monitoring_state(3, "n2", shipped=False, kept=True)
    a.monitoring_state(4, "n1", shipped=True, kept=False)
    assert [(v.step, v.rule) for v in a.violations] == [(3, "monitoring state shipped within the bound"),
                                                         (4, "monitoring state kept")]
    assert "n1" in a.violations[1].detail
    assert a.checks["monitoring state shipped within the bound"] == 4


def test_the_shared_disk_mounted_on_two_nodes_in_any_sample_is_a_violation() -> None:
    a = Auditor([["n1", "n2"]])
    a.mount_samples(1, 50, [])
    assert a.ok and a.checks["shared disk mounted on one node at every sample"] == 50
    a.mount_samples(2, 30, [(7.25, ["n1", "n2"])])
    assert not a.ok and a.checks["shared disk mounted on one node at every sample"] == 80
    [violation] = a.violations
    assert (violation.step, violation.rule) == (2, "shared disk mounted on one node at every sample")
    assert violation.detail == "the shared disk mounted on n1 and n2 at once (t=7.250)"


def test_the_sampler_reads_a_node_s_mounts_from_its_mount_table(tmp_path, monkeypatch) -> None:
    from hakit.lab import writer

    table = ("36 25 0:32 / /run rw - tmpfs tmpfs rw\n"
             "40 25 7:0 / /srv/hakit rw,relatime - ext4 /dev/loop0 rw\n")
    real = writer.Path

    def fake(path: str):
        return tmp_path / "mountinfo" if path == "/proc/42/mountinfo" else real(path)

    (tmp_path / "mountinfo").write_text(table)
    monkeypatch.setattr(writer, "Path", fake)
    assert writer.mounts(42, "/dev/loop0") and not writer.mounts(42, "/dev/loop1")
    assert not writer.mounts(43, "/dev/loop0")  # a node that is gone has nothing mounted


def test_semi_sync_on_while_the_peer_s_server_is_down_is_a_violation():
    auditor = Auditor([["n1", "n2"]])
    auditor.semi_sync_alone(3, "n2", "n1", enabled=False)
    assert auditor.ok and auditor.checks["semi-sync off while nothing receives"] == 1
    auditor.semi_sync_alone(4, "n2", "n1", enabled=True)
    assert not auditor.ok and auditor.checks["semi-sync off while nothing receives"] == 2
    assert "step 4" in str(auditor.violations[0]) and "n1's server is down" in str(auditor.violations[0])


def test_four_nodes_each_pair_has_its_vip_on_one_node_and_only_the_database_s_follows_the_writable_node():
    a = Auditor([["db1", "db2"], ["app1", "app2"]])
    healthy = doc(db1=(3, True, True), db2=(3, False, False), app1=(None, True, False), app2=(None, False, False))
    a.status(1, healthy, settled=True)
    assert a.ok and a.checks["VIP on exactly one node"] == 2 and a.checks["the VIP follows the writable node"] == 1
    a.status(2, doc(db1=(3, True, True), db2=(3, False, False), app1=(None, True, False), app2=(None, True, False)),
             settled=True)
    assert rules(a) == ["VIP on exactly one node"] and "app1, app2" in str(a.violations[0])
    a.status(3, doc(db1=(3, True, True), db2=(3, False, False), app1=(None, False, False),
                    app2=(None, False, False)), settled=True)
    assert rules(a)[1:] == ["VIP on exactly one node"] and "no node" in str(a.violations[1])


def test_the_database_active_must_stay_writable_and_take_writes_while_the_application_pair_is_lost():
    a = Auditor([["db1", "db2"], ["app1", "app2"]])
    a.database_active_kept(1, "db1", [True] * 30, True, "both application nodes were powered off")
    assert a.ok and a.checks["the database active kept while the application pair is lost"] == 31
    a.database_active_kept(2, "db1", [True, None, False, True], True, "the pairs were split from each other")
    assert not a.ok and "db1 was not writable at 2 of 4 reads while the pairs were split" in str(a.violations[0])
    a.database_active_kept(3, "db1", [True], False, "both application nodes were cut off")
    assert "no write through the database VIP was acknowledged while both application nodes were cut off" in str(
        a.violations[1])
