-- Issue 20: a receiver ([webhook], [hook]) stays active while any live
-- daemon has it. Each daemon's heartbeat row names its receivers (a JSON
-- array of {"name", "config"}, config a short fingerprint of the settings,
-- never a secret), and each heartbeat sets event_receivers.active from the
-- live daemons' lists: a daemon started without [webhook] no longer turns
-- delivery off for the others, and daemons whose settings differ are
-- reported (`config check`, `status`, the log at start).
ALTER TABLE gate_members ADD COLUMN receivers TEXT NOT NULL DEFAULT '[]';
