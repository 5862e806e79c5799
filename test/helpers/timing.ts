/**
 * What a busy shared machine adds to any wall-clock measurement: under load, CI has stalled a test's
 * processes for over a second, and two suites run beside two busy loops for 2.6 s. A test bounding how
 * long something took adds this to the bound it documents, so that it catches a hang or a missing
 * deadline (seconds to forever late), never a busy machine. The reason a function gives ("did not answer
 * within 1200 ms") is checked too: that is the real proof.
 */
export const BUSY_MACHINE_SLACK_MS = 3000;
