"""The operator console: a web page to watch the robot's view, collect demonstrations by clicking,
label trials and stop the arm.

Pure core (no web framework, no hardware; unit-tested on its own):

* :mod:`sim2real.console.clicks` - what a click on the heightmap means (pick, then place), canvas
  pixel -> heightmap pixel, the place rotation from a drag or a key (36 bins);
* :mod:`sim2real.console.proposal` - a draft -> the same ``PickPlaceAction`` -> ``plan_from_action``
  -> ``check_plan`` path a policy action takes, and the one gate every motion passes;
* :mod:`sim2real.console.demo_buffer` - the demonstration episode being recorded (undo, done,
  discard), written through the ``sim2real demos`` dataset layout;
* :mod:`sim2real.console.access` - who may act: the token and the single control lease;
* :mod:`sim2real.console.progress` - campaign progress (trials per task, Wilson intervals).

Shells: :mod:`sim2real.console.station` owns the camera and the robot (one hardware thread),
:mod:`sim2real.console.app` is the FastAPI application (routers per concern), and
:mod:`sim2real.console.server` runs it under uvicorn.
"""
