"""Trials: the crash-safe trial log, the campaign protocol, rosbag export, the report and replay.

A *campaign* is tasks x trials (GenSim's real-world protocol is 9 tasks x 10 trials). Each trial is
one episode; its outcome is labelled (by the operator on the real robot, by the success check in
the twin) and committed to ``DIR/trials.jsonl`` together with an artefact directory holding every
step's frames, heightmap, action, safety verdict and timings.

Modules:
    log        TrialLog / TrialWriter / load_trials: append-only, fsynced, resumable storage.
    campaign   Campaign (YAML + overrides) and run_campaign (the loop that skips / redoes trials).
    operator   Operator protocol, CLIOperator (rich prompts), AutoOperator (twin), Label.
    provenance sha256 of checkpoint / calibration, package version, git describe, configs.
    rosbag     one rosbag2 (mcap) per trial through ``rosbags``.
    stats      Wilson intervals and the exact paired (McNemar) test.
    report     the GenSim-style table, results.csv, plots and gallery.
    replay     re-run another checkpoint on recorded observations.
"""
