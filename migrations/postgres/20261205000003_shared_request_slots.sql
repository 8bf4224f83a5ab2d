-- Issue 22 item 1: daemons sharing the database take their requests from
-- one schedule instead of a static 1/n share of the ceiling each. Before
-- sending, a daemon reserves the next free slot (unix ms) and moves it on
-- by one gap (1/rate): the fleet spends the whole ceiling whenever any of
-- them has work, a daemon with nothing due leaves its slots to the others,
-- and a killed daemon loses at most the slot it held. NULL: none yet.
ALTER TABLE gate_state ADD COLUMN next_slot_ms bigint;
