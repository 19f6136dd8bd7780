"""The agent's TLS step, turn by turn and without an API server: certificates from Secrets reach
the driver (as fingerprints in its stored trees), a bad certificate fails its own VIP and no
other, a changed Secret wakes exactly the VIPs that name it, expiry is reported once, and the
agent watches only the namespaces and names its trees need.

The Secrets live in a fake API (``secretsapi.py``) that applies field selectors as the API
server does; the device is a contract-1 driver built here that stores the trees it is given
(``lbaas.drivers.documents``, keys as fingerprints).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from lbaas.drivers.capabilities import FEATURES, OPERATIONAL, why_unsupported
from lbaas.drivers.contract import DeviceHandle, Driver, ProbeResult, Statuses
from lbaas.drivers.documents import to_document
from lbaas.drivers.model import LoadBalancer
from lbaas.kube.client import Kube
from lbaas.tls.agent import TreeTLS
from lbaas.trees import translate
from lbaas.trees.assemble import build
from lbaas.trees.loop import Mode, Result
from tlskit import ca_configmap, issue, leaked_forms, tls_secret
from unit.fakes import NS, Rig, async_test, eventually
from unit.secretsapi import SecretsApi

WEB = issue("web", names=("web.example.com",), days=90)
OTHER = issue("other", names=("other.example.com",), days=90)


class StoringDriver(Driver):
    """A device that keeps each tree as a document (what a driver's state file would hold)."""

    features = frozenset(set(FEATURES) - OPERATIONAL)

    def __init__(self) -> None:
        self.trees: dict[str, Any] = {}
        self.applies: Counter[str] = Counter()

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        self.trees[lb.key] = to_document(lb)
        self.applies[lb.key] += 1

    def delete(self, device: DeviceHandle, key: str) -> None:
        self.trees.pop(key, None)

    def probe(self, device: DeviceHandle) -> ProbeResult:
        return ProbeResult(True, "ready")

    def member_statuses(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, Statuses]:
        return {lb.key: {} for lb in lbs}

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[str]:
        return []

    def fingerprints(self, key: str) -> list[str]:
        tls = self.trees[key]["listeners"][0]["tls"]
        return [c["fingerprint"] for c in tls["certificates"]]


def ca_b64() -> str:
    return base64.b64encode(WEB.cert_pem).decode()


def terminated(*secrets: str, **tls: Any) -> dict[str, Any]:
    refs = [{"name": s} for s in secrets]
    return {"port": 443, "protocol": "TERMINATED_HTTPS", "tls": {"certificateRefs": refs, **tls}}


async def tls_rig(tmp: Path, api: SecretsApi, **settings: Any) -> tuple[Rig, StoringDriver]:
    rig = Rig(tmp, **settings)
    driver = StoringDriver()
    rig.drivers.add("storing", driver)
    rig.tls = TreeTLS(
        cast(Kube, api),
        warning=timedelta(days=rig.settings.certificate_expiry_warning_days),
        trigger=lambda key: rig._trigger(key, Mode.APPLY),
    )
    rig.reconciler.tls = rig.tls
    rig.add_device(driver="storing")
    await rig.start_worker()
    return rig, driver


def cond(rig: Rig, name: str, kind: str = "CertificatesValid") -> dict[str, Any]:
    status = rig.cluster.status("VIP", name)
    return next((c for c in status.get("conditions") or () if c["type"] == kind), {})


@async_test
async def test_certificates_reach_the_driver_as_fingerprints(tmp_path: Path) -> None:
    api = SecretsApi()
    api.put("secrets", NS, tls_secret("web", WEB.cert_pem, WEB.key_pem))
    rig, driver = await tls_rig(tmp_path, api)
    async with rig:
        key = rig.add_tree("web", **terminated("web"))
        await rig.bind(key)
        assert await rig.reconcile(key) == Result.DONE
        status = rig.cluster.status("VIP", "web")
        assert status["phase"] == "Active", status
        assert status["tls"]["certificates"] == [
            {
                "name": "web",
                "dnsNames": ["web.example.com"],
                "notAfter": WEB.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "fingerprint": WEB.fingerprint,
            }
        ]
        assert (cond(rig, "web")["status"], cond(rig, "web")["reason"]) == ("True", "Valid")
        assert driver.fingerprints(f"{NS}/web") == [WEB.fingerprint]
        stored = json.dumps(driver.trees)
        for form in leaked_forms(WEB.key_pem):
            assert form not in stored, "a private key in a stored tree"
        assert "sha256:" in stored  # the key as its fingerprint


@async_test
async def test_a_bad_certificate_fails_its_vip_only(tmp_path: Path) -> None:
    api = SecretsApi()
    api.put("secrets", NS, tls_secret("web", WEB.cert_pem, WEB.key_pem))
    api.put("secrets", NS, tls_secret("bad", OTHER.cert_pem, WEB.key_pem))  # key of another
    rig, driver = await tls_rig(tmp_path, api)
    async with rig:
        good = rig.add_tree("good", members={"g1": "10.1.0.1"}, **terminated("web"))
        bad = rig.add_tree("bad", members={"b1": "10.1.0.2"}, **terminated("bad"))
        await rig.bind(good, address="10.0.0.1")
        await rig.bind(bad, address="10.0.0.2")
        assert await rig.reconcile(good) == Result.DONE
        before = dict(driver.applies)
        assert await rig.reconcile(bad) == Result.BLOCKED
        status = rig.cluster.status("VIP", "bad")
        assert (status["phase"], status["reason"]) == ("Error", "CertificateInvalid")
        assert status["message"].startswith(
            "Secret bad: tls.key does not match the certificate in tls.crt (CN=other"
        )
        assert status["tls"]["certificates"][0]["fingerprint"] == OTHER.fingerprint
        assert cond(rig, "bad")["reason"] == "CertificateInvalid"
        assert rig.cluster.status("Member", "b1")["phase"] == "Error"
        assert f"{NS}/bad" not in driver.trees, "nothing of it was sent"
        assert dict(driver.applies) == before, "the other VIP was not touched"
        assert rig.cluster.status("VIP", "good")["phase"] == "Active"
        warnings = [e for e in rig.reporter.events if e.reason == "CertificateInvalid"]
        assert {e.name for e in warnings} >= {"bad"} and all(
            "PRIVATE" not in e.message for e in warnings
        )
        # A missing Secret is the same reason, with what to do.
        missing = rig.add_tree("missing", members={}, **terminated("nope"))
        await rig.bind(missing, address="10.0.0.3")
        assert await rig.reconcile(missing) == Result.BLOCKED
        assert rig.cluster.status("VIP", "missing")["message"] == (
            "Secret nope (certificateRefs) not found in namespace team-a: create it (type"
            " kubernetes.io/tls) or fix the name"
        )
        # Fixed: the Secret's change wakes that VIP, and it is served.
        rig.triggered.clear()
        api.put("secrets", NS, tls_secret("bad", OTHER.cert_pem, OTHER.key_pem))
        await eventually(lambda: (NS, "bad") in {k for k, _ in rig.triggered}, 3, "a trigger")
        assert await rig.reconcile(bad) == Result.DONE
        assert driver.fingerprints(f"{NS}/bad") == [OTHER.fingerprint]


@async_test
async def test_a_changed_secret_reapplies_exactly_the_vips_that_name_it(tmp_path: Path) -> None:
    api = SecretsApi()
    api.put("secrets", NS, tls_secret("web", WEB.cert_pem, WEB.key_pem))
    api.put("secrets", NS, tls_secret("other", OTHER.cert_pem, OTHER.key_pem))
    rig, driver = await tls_rig(tmp_path, api)
    async with rig:
        keys = [rig.add_tree(n, members={}, **terminated(s)) for n, s in
                (("a", "web"), ("b", "web"), ("c", "other"))]  # fmt: skip
        for index, key in enumerate(keys):
            await rig.bind(key, address=f"10.0.0.{index + 1}")
            assert await rig.reconcile(key) == Result.DONE
        rig.triggered.clear()
        renewed = issue("web", names=("web.example.com",), days=180)
        api.put("secrets", NS, tls_secret("web", renewed.cert_pem, renewed.key_pem))
        await eventually(lambda: len(rig.triggered) >= 2, 3, "the triggers")
        await asyncio.sleep(0.3)  # nothing else comes
        assert sorted(rig.triggered) == [((NS, "a"), Mode.APPLY), ((NS, "b"), Mode.APPLY)]
        for key in keys:
            await rig.reconcile(key, Mode.APPLY)
        assert driver.applies == Counter({f"{NS}/a": 2, f"{NS}/b": 2, f"{NS}/c": 1})
        assert driver.fingerprints(f"{NS}/a") == [renewed.fingerprint]
        status = rig.cluster.status("VIP", "b")["tls"]["certificates"][0]
        assert status["fingerprint"] == renewed.fingerprint


@async_test
async def test_expiring_soon_is_a_condition_and_one_event(tmp_path: Path) -> None:
    api = SecretsApi()
    soon = issue("web", names=("web.example.com",), days=5)
    api.put("secrets", NS, tls_secret("web", soon.cert_pem, soon.key_pem))
    rig, _ = await tls_rig(tmp_path, api)
    async with rig:
        key = rig.add_tree("web", **terminated("web"))
        await rig.bind(key)
        for _ in range(3):
            assert await rig.reconcile(key, Mode.VERIFY) == Result.DONE
        status = rig.cluster.status("VIP", "web")
        assert (status["phase"], status["reason"]) == ("Active", "Programmed")
        assert (cond(rig, "web")["status"], cond(rig, "web")["reason"]) == (
            "False",
            "CertificateExpiringSoon",
        )
        assert cond(rig, "web", "Ready")["status"] == "True", "still served"
        events = [e for e in rig.reporter.events if e.reason == "CertificateExpiringSoon"]
        assert len(events) == 1, events
        assert "within the 14-day warning threshold" in events[0].message


@async_test
async def test_only_named_secrets_of_needed_namespaces_are_watched(tmp_path: Path) -> None:
    api = SecretsApi()
    api.put("secrets", NS, tls_secret("web", WEB.cert_pem, WEB.key_pem))
    for i in range(5):  # the namespace's other TLS Secrets: streamed by, never kept
        api.put("secrets", NS, tls_secret(f"unrelated-{i}", OTHER.cert_pem, OTHER.key_pem))
    api.put("configmaps", NS, ca_configmap("clients", WEB.cert_pem))
    rig, _ = await tls_rig(tmp_path, api)
    store = rig.tls.store
    async with rig:
        plain = rig.add_tree("plain", members={})
        await rig.bind(plain, address="10.0.0.9")
        assert await rig.reconcile(plain) == Result.DONE
        assert store.watching() == [] and api.requests == [], "no TLS, no watch"
        validation = {"caCertificateRefs": [{"name": "clients", "kind": "ConfigMap"}]}
        key = rig.add_tree("web", members={}, **terminated("web", clientValidation=validation))
        await rig.bind(key)
        assert await rig.reconcile(key) == Result.DONE
        assert store.watching() == [(NS, "configmaps"), (NS, "tls")]
        assert sorted(api.calls("list")) == [
            ("list", "configmaps", NS, ""),
            ("list", "secrets", NS, "type=kubernetes.io/tls"),
        ]
        assert store.held() == 2, "only web and clients are kept"
        # Named after the watch listed: read once by name, then kept current by the watch.
        api.put("secrets", NS, tls_secret("late", OTHER.cert_pem, OTHER.key_pem))
        both = terminated("web", "late", clientValidation=validation)["tls"]
        rig.cluster.update_spec("VIP", "web", tls=both)
        assert await rig.reconcile(key) == Result.DONE
        assert api.calls("get") == [("get", "secrets", NS, "late")]
        assert store.held() == 3
        # A CA bundle in a Secret of any type: the namespace's other Secrets are watched too
        # (the two selectors split them), still keeping only the named one.
        ca = {"type": "Opaque", "metadata": {"name": "backend-ca"}, "data": {"ca.crt": ca_b64()}}
        api.put("secrets", NS, ca)
        api.put("secrets", NS, {"type": "Opaque", "metadata": {"name": "helm-release"}})
        backend = {"caCertificateRefs": [{"name": "backend-ca", "kind": "Secret"}]}
        rig.cluster.update_spec("Pool", "web", tls=backend)
        assert await rig.reconcile(key) == Result.DONE
        assert store.watching() == [(NS, "configmaps"), (NS, "other"), (NS, "tls")]
        assert ("list", "secrets", NS, "type!=kubernetes.io/tls") in api.calls("list")
        assert store.held() == 4
        # A VIP that lets go: its names are forgotten and its watches stopped.
        rig.cluster.update_spec("VIP", "web", protocol="TCP", tls=None)
        rig.cluster.update_spec("Pool", "web", tls=None)
        assert await rig.reconcile(key) == Result.DONE
        assert store.watching() == [] and store.held() == 0
        status = rig.cluster.status("VIP", "web")
        assert "tls" not in status and not cond(rig, "web"), "no certificate status left"


class NoClientValidation(StoringDriver):
    """A device that terminates TLS but cannot check client certificates."""

    features = StoringDriver.features - {"tls.client-validation"}


@async_test
async def test_a_device_lacking_a_tls_feature_gets_nothing(tmp_path: Path) -> None:
    """The core refuses a tree asking for a TLS feature the device's driver lacks (the
    scheduler's question and the reconcile's, with shapes or with material alike): the VIP is
    Unsupported, naming the feature, and the driver is never called."""
    api = SecretsApi()
    api.put("secrets", NS, tls_secret("web", WEB.cert_pem, WEB.key_pem))
    api.put("configmaps", NS, ca_configmap("clients", WEB.cert_pem))
    rig, _ = await tls_rig(tmp_path, api)
    lacking = NoClientValidation()
    rig.drivers.add("partial", lacking)
    rig.add_device("partial", driver="partial")
    await rig.start_worker("partial")
    async with rig:
        validation = {"caCertificateRefs": [{"name": "clients", "kind": "ConfigMap"}]}
        key = rig.add_tree("web", **terminated("web", clientValidation=validation))
        await rig.bind(key, device="partial")
        assert await rig.reconcile(key) == Result.BLOCKED
        status = rig.cluster.status("VIP", "web")
        assert (status["phase"], status["reason"]) == ("Error", "Unsupported")
        assert (
            "lacks feature tls.client-validation (mutual TLS (client certificates))"
            in (status["message"])
        )
        assert lacking.applies == Counter()
        tree = build(rig.views, key, rig.cluster.get("VIP", "web"), None, "")
        shaped = translate.load_balancer(tree, "10.0.0.1")  # the scheduler's: no Secret read
        assert why_unsupported(lacking, {}, shaped) == (
            "lacks feature tls.client-validation (mutual TLS (client certificates))"
        )
