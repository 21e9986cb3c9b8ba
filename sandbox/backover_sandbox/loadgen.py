"""A stand-in microservice: writes every BSON type as the microservices' user until refused.

The rehearsal runs it while the lifecycle captures changes. Writes are a mix a real service makes:
inserts of documents holding every BSON type, ``$set``/``$inc``/``$push``/``$unset`` updates,
replacements, deletes, and e-mail swaps on a collection with a unique index. It stops by itself
when the server refuses a write with code 13 (the user became read-only), and counts the writes
the server acknowledged.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from bson import Binary, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.max_key import MaxKey
from bson.min_key import MinKey
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

log = logging.getLogger(__name__)

UNAUTHORIZED = 13


@dataclass
class LoadReport:
    acknowledged: int = 0  # writes the server confirmed
    by_kind: dict[str, int] = field(default_factory=dict)
    refused_at: float | None = None  # when the first write was refused as unauthorized
    error: str | None = None  # anything else that stopped it

    def count(self, kind: str) -> None:
        self.acknowledged += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1


def order_document(seq: int, rng: random.Random) -> dict:
    """A new order holding every BSON type a microservice writes."""
    return {
        "_id": ObjectId(),
        "seq": seq,
        "qty": rng.randint(1, 9),
        "total": Int64(rng.randint(1, 10**12)),
        "ratio": rng.random(),
        "price": Decimal128(Decimal(rng.randint(1, 99999)) / Decimal(100)),
        "created": datetime(
            2026, 11, 27, 12, rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999) * 1000
        ),
        "stamp": Timestamp(1_764_000_000 + seq, 1),
        "ref": Binary(rng.randbytes(16), 4),
        "blob": Binary(rng.randbytes(rng.randint(0, 8)), 0),
        "pattern": Regex(f"^sku-{seq}", "i"),
        "tags": ["new", None, True],
        "lines": [{"sku": f"sku-{rng.randint(1, 30):04d}", "n": rng.randint(1, 3)}],
        "bounds": [MinKey(), MaxKey()],
        "status": "new",
    }


class LoadGenerator:
    """Runs on its own thread until refused, stopped, or ``max_writes`` is reached."""

    def __init__(
        self,
        client: MongoClient,
        *,
        seed: int = 7,
        pause_seconds: float = 0.002,
        max_writes: int | None = None,
        writes_per_second: float | None = None,
    ) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.pause_seconds = pause_seconds
        self.max_writes = max_writes
        #: a steady rate instead of a pause: write n is not sent before ``start + n / rate``
        self.writes_per_second = writes_per_second
        self.report = LoadReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadgen", daemon=True)
        self._order_ids: list[ObjectId] = []
        self._seq = 0

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> LoadReport:
        self._stop.set()
        self._thread.join(timeout)
        return self.report

    def wait_until_refused(self, timeout: float) -> bool:
        """Block until the server refused a write (or the generator stopped otherwise)."""
        self._thread.join(timeout)
        return self.report.refused_at is not None

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.max_writes is not None and self.report.acknowledged >= self.max_writes:
                    return
                if self.writes_per_second is not None:
                    # A schedule on acknowledged writes, not a pause: a slow write is caught up and the
                    # rate is not exceeded by more than one step (an e-mail swap is three writes).
                    due = started + self.report.acknowledged / self.writes_per_second
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                self._one_write()
                if self.pause_seconds and self.writes_per_second is None:
                    time.sleep(self.pause_seconds)
        except OperationFailure as e:
            if e.code == UNAUTHORIZED:
                self.report.refused_at = time.time()
                log.info(
                    "load generator: write refused (read-only) after %d acknowledged writes",
                    self.report.acknowledged,
                )
            else:
                self.report.error = f"{type(e).__name__}: code {e.code}"
        except PyMongoError as e:
            self.report.error = f"{type(e).__name__}: {e}"

    def _one_write(self) -> None:
        shop = self.client.shop
        roll = self.rng.random()
        if roll < 0.35 or len(self._order_ids) < 5:
            self._seq += 1
            doc = order_document(self._seq, self.rng)
            shop.orders.insert_one(doc)
            self._order_ids.append(doc["_id"])
            self.report.count("insert")
        elif roll < 0.6:
            target = self.rng.choice(self._order_ids)
            shop.orders.update_one(
                {"_id": target},
                {
                    "$set": {"status": self.rng.choice(["paid", "sent"])},
                    "$inc": {"qty": 1},
                    "$push": {"tags": Int64(self._seq)},
                },
            )
            self.report.count("update")
        elif roll < 0.7:
            target = self.rng.choice(self._order_ids)
            shop.orders.update_one({"_id": target}, {"$unset": {"blob": ""}, "$set": {"lines.0.n": 5}})
            self.report.count("update")
        elif roll < 0.8:
            target = self.rng.choice(self._order_ids)
            self._seq += 1
            replacement = order_document(self._seq, self.rng)
            del replacement["_id"]
            shop.orders.replace_one({"_id": target}, replacement)
            self.report.count("replace")
        elif roll < 0.87:
            target = self._order_ids.pop(self.rng.randrange(len(self._order_ids)))
            shop.orders.delete_one({"_id": target})
            self.report.count("delete")
        elif roll < 0.94:
            self._swap_emails()
        else:
            sku = f"sku-{self.rng.randint(1, 30):04d}"
            self.client.inventory.items.update_one({"_id": sku}, {"$inc": {"stock": -1}})
            self.report.count("update")

    def _swap_emails(self) -> None:
        """Two customers swap e-mail addresses under a unique index (three acknowledged writes)."""
        a, b = self.rng.sample(range(1, 21), 2)
        customers = self.client.shop.customers
        first = customers.find_one({"_id": a})
        second = customers.find_one({"_id": b})
        if first is None or second is None:
            return
        # A parking address no other generator run can have left behind (a run refused mid-swap keeps it).
        customers.update_one({"_id": a}, {"$set": {"email": f"swap-{ObjectId()}@example.com"}})
        self.report.count("update")
        customers.update_one({"_id": b}, {"$set": {"email": first["email"]}})
        self.report.count("update")
        customers.update_one({"_id": a}, {"$set": {"email": second["email"]}})
        self.report.count("update")
