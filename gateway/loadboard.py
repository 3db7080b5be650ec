"""Whose turn it is to accept, among the workers of ``instpages serve --workers N``, in memory they share.

The workers accept from one listening socket; the kernel wakes all of them for each new connection and the first
to call ``accept`` gets it, which under load is not the one that should: the 200-client WebDAV benchmark saw 173
connections on one worker and 27 on the other, which then served a third of the requests. Leaving a connection
to the sibling that holds fewer did not cure it: the counts include connections that their clients closed and the
worker has not noticed yet, so after one burst the slower worker looked busy and the next burst went to the
other (56 against 144). Here the workers take turns: the next connection is for the worker whose turn it is; the
others leave it to that one for a short while (the turn holder may be busy or stuck; see
:mod:`gateway.web.tlsaccept`), and whoever takes it passes the turn on to the next running worker.

The board is an anonymous shared mapping made by the supervisor before it forks, so every worker (and a restarted
one) sees the same slots; a worker marks itself present when it serves, and the supervisor marks the slot of a
worker that ended absent, so that no turn waits for it.
"""
from __future__ import annotations

import mmap
import struct

#: a slot whose worker is not running, and one whose worker serves
ABSENT, PRESENT = -1, 1
_CELL = struct.Struct("q")
_TURN = 0  # cell 0: the slot whose turn it is; cells 1..N: the workers


class LoadBoard:
    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError("at least one worker")
        self.workers = workers
        self._mem = mmap.mmap(-1, _CELL.size * (workers + 1))  # MAP_SHARED|MAP_ANONYMOUS: shared across fork
        for i in range(workers):
            self.clear(i)

    def _get(self, cell: int) -> int:
        return _CELL.unpack_from(self._mem, cell * _CELL.size)[0]

    def _put(self, cell: int, value: int) -> None:
        _CELL.pack_into(self._mem, cell * _CELL.size, value)

    def get(self, slot: int) -> int:
        """PRESENT or ABSENT."""
        return self._get(slot + 1)

    def put(self, slot: int, state: int) -> None:
        self._put(slot + 1, state)

    def clear(self, slot: int) -> None:
        self.put(slot, ABSENT)

    @property
    def turn(self) -> int:
        return self._get(_TURN) % self.workers

    def pass_turn(self, after: int) -> None:
        """The turn goes to the next running worker after slot ``after`` (round the table)."""
        for step in range(1, self.workers + 1):
            slot = (after + step) % self.workers
            if self.get(slot) != ABSENT:
                self._put(_TURN, slot)
                return

    def seat(self, slot: int) -> Seat:
        if not 0 <= slot < self.workers:
            raise ValueError(f"no slot {slot} among {self.workers}")
        return Seat(self, slot)


class Seat:
    """One worker's slot on the board."""

    def __init__(self, board: LoadBoard, slot: int):
        self.board, self.slot = board, slot

    def arrive(self) -> None:
        """This worker serves: turns come to it from now on."""
        self.board.put(self.slot, PRESENT)

    def my_turn(self) -> bool:
        """True when the next connection is for this worker: its turn, or the turn of a worker not running."""
        turn = self.board.turn
        return turn == self.slot or self.board.get(turn) == ABSENT

    def took(self) -> None:
        """This worker accepted a connection: the next one is for the next worker."""
        self.board.pass_turn(self.slot)

    def leave(self) -> None:
        self.board.clear(self.slot)
