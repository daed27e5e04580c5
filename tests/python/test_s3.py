"""turbopump.Writer and turbopump.Loader with a dataset in S3-compatible object storage:
the test gateway that tests/integration/s3.sh starts (TP_S3_DIR); skipped without it.
Run by tests/python/run.sh with the package built."""
import os
import subprocess
import uuid

import numpy as np
import pytest

import turbopump

GW = os.environ.get("TP_S3_DIR", "")
TP = os.environ["TURBOPUMP"]
if not GW or not os.path.exists(os.path.join(GW, "env")):
    pytest.skip("no S3 gateway (tests/s3/rgw.sh did not start one)", allow_module_level=True)


def gateway_env():
    path = os.path.join(GW, "env")
    env = {}
    for line in open(path):
        k, v = line.replace("export ", "", 1).strip().split("=", 1)
        env[k] = v
    return env


@pytest.fixture(scope="module")
def bucket():
    env = gateway_env()
    os.environ.update(env)
    os.environ["TURBOPUMP_BIN"] = TP
    name = "py-" + uuid.uuid4().hex[:12]
    subprocess.run(["curl", "-sf", "-X", "PUT", "--aws-sigv4", "aws:amz:%s:s3" % env["AWS_REGION"],
                    "--user", "%s:%s" % (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
                    "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                    "%s/%s" % (env["AWS_ENDPOINT_URL"], name)], check=True)
    return "s3://" + name


def test_writer_and_loader(bucket, tmp_path):
    url = bucket + "/py"
    fields = [("x", "tensor", "uint8", (4,)), ("cls", "int64")]
    with turbopump.Writer(url, fields=fields) as w:
        for i in range(50):
            w.write({"x": np.full(4, i, np.uint8), "cls": i % 3})
    # the same samples written locally give the same batches
    with turbopump.Writer(tmp_path / "py", fields=fields) as w:
        for i in range(50):
            w.write({"x": np.full(4, i, np.uint8), "cls": i % 3})
    got = [np.asarray(b["x"]).copy() for b in turbopump.Loader(url, 10, shuffle=False)]
    assert np.concatenate(got)[:, 0].tolist() == list(range(50))
    remote = [np.asarray(b["x"]).copy() for b in turbopump.Loader(url, 7, seed=4)]
    local = [np.asarray(b["x"]).copy() for b in turbopump.Loader(str(tmp_path / "py"), 7, seed=4)]
    assert all((a == b).all() for a, b in zip(remote, local)) and len(remote) == len(local)
    with pytest.raises(Exception, match="already a dataset"):
        turbopump.Writer(url, fields=fields).write({"x": np.zeros(4, np.uint8), "cls": 0})


def test_missing_dataset(bucket):
    with pytest.raises(Exception, match="not a dataset"):
        next(iter(turbopump.Loader(bucket + "/none", 4)))
