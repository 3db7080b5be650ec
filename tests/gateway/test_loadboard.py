"""The workers' load board (gateway.loadboard): what a worker writes after the fork is read by its siblings, the
workers take the next connection in turns, no turn waits for a worker that ended, and the supervisor marks the
slot of a worker that ended."""
from __future__ import annotations

import os
import time

import pytest

from gateway.loadboard import ABSENT, PRESENT, LoadBoard
from gateway.supervisor import Supervisor


def test_workers_take_turns_round_the_table():
    board = LoadBoard(3)
    seats = [board.seat(i) for i in range(3)]
    for s in seats:
        s.arrive()  # serving
    taken = []
    for _ in range(7):
        whose = [s.slot for s in seats if s.my_turn()]
        assert len(whose) == 1
        taken.append(whose[0])
        seats[whose[0]].took()
    assert taken == [0, 1, 2, 0, 1, 2, 0]


def test_no_turn_waits_for_a_worker_that_is_not_running():
    board = LoadBoard(3)
    a, b, c = (board.seat(i) for i in range(3))
    a.arrive()
    c.arrive()  # slot 1 never started
    a.took()
    assert board.turn == 2  # past the absent slot
    c.took()
    assert board.turn == 0
    b.arrive()
    a.took()
    assert board.turn == 1
    b.leave()  # or died: the supervisor marks it absent
    assert a.my_turn() and c.my_turn()  # its turn is anybody's


def test_what_a_worker_writes_after_the_fork_is_read_by_the_others():
    board = LoadBoard(2)
    board.seat(0).arrive()
    pid = os.fork()
    if pid == 0:  # a worker: serves, takes one
        try:
            seat = board.seat(1)
            seat.arrive()
            seat.took()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert board.get(1) == PRESENT and board.get(0) == PRESENT
    assert board.turn == 0  # passed on to slot 0 by the child


def test_the_supervisor_marks_the_slot_of_a_worker_that_ended_absent():
    """Run in a child process of its own, so that the supervisor's waitpid sees only its own worker."""
    board = LoadBoard(1)
    seen = LoadBoard(1)  # what the supervisor saw before it reaped the worker

    def worker(slot, ready):
        board.seat(slot).arrive()
        time.sleep(0.3)  # long enough for the supervisor to see it
        os._exit(3)  # dies without leaving its seat

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sup = Supervisor(1, worker, board=board)
            sup._spawn(sup.slots[0])
            deadline = time.monotonic() + 10
            while sup.slots[0].pid and time.monotonic() < deadline:
                if board.get(0) == PRESENT:
                    seen.put(0, PRESENT)
                sup._reap()
                time.sleep(0.005)
            code = 0 if sup.slots[0].pid == 0 else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    assert seen.get(0) == PRESENT and board.get(0) == ABSENT


def test_slots_are_checked():
    with pytest.raises(ValueError):
        LoadBoard(0)
    with pytest.raises(ValueError):
        LoadBoard(2).seat(2)
