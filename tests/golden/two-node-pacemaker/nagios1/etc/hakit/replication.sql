-- managed by hakit: rendered from the inventory by hakit render; edit the inventory, not this file
-- Per-node setup of nagios1 (peer nagios2): users and the replication source.
-- Mode 0600: it holds passwords. Run by hakit init; safe to run again.
--
-- Nothing here may replicate: each node gets its own users and its own CHANGE MASTER
-- (safety invariant 4), so binary logging is off for this whole session. Replication is
-- NOT started here: hakit starts it after checking generation and errant transactions.
SET SESSION sql_log_bin = 0;

-- the replication user, for the peer nagios2 pulling this node's binary log
CREATE USER IF NOT EXISTS 'hakit_repl'@'198.51.100.22' IDENTIFIED BY 'FAKEreplicationPassw0rdForTests';
ALTER USER 'hakit_repl'@'198.51.100.22' IDENTIFIED BY 'FAKEreplicationPassw0rdForTests';
-- no TLS required (mysql.tls.enabled is false; this also undoes an earlier REQUIRE SSL)
ALTER USER 'hakit_repl'@'198.51.100.22' REQUIRE NONE;
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'hakit_repl'@'198.51.100.22';
-- the peer's resource agent reads this node's generation with the same login before it promotes
GRANT SELECT ON `hakit`.* TO 'hakit_repl'@'198.51.100.22';

-- hakit itself, on the node (over SSH and from the resource agents): it promotes, demotes,
-- repoints replication and rebuilds a node from a dump, so it needs every privilege
CREATE USER IF NOT EXISTS 'hakit_admin'@'localhost' IDENTIFIED BY 'FAKEadminPassw0rdForGoldenTests';
ALTER USER 'hakit_admin'@'localhost' IDENTIFIED BY 'FAKEadminPassw0rdForGoldenTests';
GRANT ALL PRIVILEGES ON *.* TO 'hakit_admin'@'localhost' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'hakit_admin'@'127.0.0.1' IDENTIFIED BY 'FAKEadminPassw0rdForGoldenTests';
ALTER USER 'hakit_admin'@'127.0.0.1' IDENTIFIED BY 'FAKEadminPassw0rdForGoldenTests';
GRANT ALL PRIVILEGES ON *.* TO 'hakit_admin'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'hakit_admin'@'198.51.100.21' IDENTIFIED BY 'FAKEadminPassw0rdForGoldenTests';
ALTER USER 'hakit_admin'@'198.51.100.21' IDENTIFIED BY 'FAKEadminPassw0rdForGoldenTests';
GRANT ALL PRIVILEGES ON *.* TO 'hakit_admin'@'198.51.100.21' WITH GRANT OPTION;

-- the monitoring master's own user, on its databases only
CREATE USER IF NOT EXISTS 'opsview'@'localhost' IDENTIFIED BY 'FAKEmonitoringDbPassw0rdForTests';
ALTER USER 'opsview'@'localhost' IDENTIFIED BY 'FAKEmonitoringDbPassw0rdForTests';
GRANT ALL PRIVILEGES ON `opsview`.* TO 'opsview'@'localhost';
GRANT ALL PRIVILEGES ON `runtime`.* TO 'opsview'@'localhost';
GRANT ALL PRIVILEGES ON `odw`.* TO 'opsview'@'localhost';
-- read-only views for hakit check (run by the monitoring master): replication state and
-- hakit's generation; no SUPER or READ_ONLY ADMIN, so read_only binds this user
GRANT SLAVE MONITOR, BINLOG MONITOR ON *.* TO 'opsview'@'localhost';
GRANT SELECT ON `hakit`.* TO 'opsview'@'localhost';
CREATE USER IF NOT EXISTS 'opsview'@'127.0.0.1' IDENTIFIED BY 'FAKEmonitoringDbPassw0rdForTests';
ALTER USER 'opsview'@'127.0.0.1' IDENTIFIED BY 'FAKEmonitoringDbPassw0rdForTests';
GRANT ALL PRIVILEGES ON `opsview`.* TO 'opsview'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `runtime`.* TO 'opsview'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `odw`.* TO 'opsview'@'127.0.0.1';
-- read-only views for hakit check (run by the monitoring master): replication state and
-- hakit's generation; no SUPER or READ_ONLY ADMIN, so read_only binds this user
GRANT SLAVE MONITOR, BINLOG MONITOR ON *.* TO 'opsview'@'127.0.0.1';
GRANT SELECT ON `hakit`.* TO 'opsview'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'opsview'@'198.51.100.21' IDENTIFIED BY 'FAKEmonitoringDbPassw0rdForTests';
ALTER USER 'opsview'@'198.51.100.21' IDENTIFIED BY 'FAKEmonitoringDbPassw0rdForTests';
GRANT ALL PRIVILEGES ON `opsview`.* TO 'opsview'@'198.51.100.21';
GRANT ALL PRIVILEGES ON `runtime`.* TO 'opsview'@'198.51.100.21';
GRANT ALL PRIVILEGES ON `odw`.* TO 'opsview'@'198.51.100.21';
-- read-only views for hakit check (run by the monitoring master): replication state and
-- hakit's generation; no SUPER or READ_ONLY ADMIN, so read_only binds this user
GRANT SLAVE MONITOR, BINLOG MONITOR ON *.* TO 'opsview'@'198.51.100.21';
GRANT SELECT ON `hakit`.* TO 'opsview'@'198.51.100.21';
CREATE USER IF NOT EXISTS 'opsview'@'198.51.100.22' IDENTIFIED BY 'FAKEmonitoringDbPassw0rdForTests';
ALTER USER 'opsview'@'198.51.100.22' IDENTIFIED BY 'FAKEmonitoringDbPassw0rdForTests';
GRANT ALL PRIVILEGES ON `opsview`.* TO 'opsview'@'198.51.100.22';
GRANT ALL PRIVILEGES ON `runtime`.* TO 'opsview'@'198.51.100.22';
GRANT ALL PRIVILEGES ON `odw`.* TO 'opsview'@'198.51.100.22';
-- read-only views for hakit check (run by the monitoring master): replication state and
-- hakit's generation; no SUPER or READ_ONLY ADMIN, so read_only binds this user
GRANT SLAVE MONITOR, BINLOG MONITOR ON *.* TO 'opsview'@'198.51.100.22';
GRANT SELECT ON `hakit`.* TO 'opsview'@'198.51.100.22';

-- replicate from the peer by GTID; stopping first makes a re-run converge (CHANGE MASTER
-- refuses to run while replication runs), and hakit starts it again after its checks.
-- MASTER_SSL is always named: CHANGE MASTER keeps every option it does not name.
-- A heartbeat every second (hakit.mysql.sql.HEARTBEAT_PERIOD, the same in hakit's own CHANGE
-- MASTER): the peer's dump thread for a replica that died goes within two (the peer counts the
-- replicas that receive from it).
STOP SLAVE;
CHANGE MASTER TO
  MASTER_HOST = '198.51.100.22',
  MASTER_PORT = 3306,
  MASTER_USER = 'hakit_repl',
  MASTER_PASSWORD = 'FAKEreplicationPassw0rdForTests',
  MASTER_USE_GTID = slave_pos,
  MASTER_HEARTBEAT_PERIOD = 1,
  MASTER_SSL = 0,
  MASTER_CONNECT_RETRY = 10;
