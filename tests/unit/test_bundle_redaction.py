"""The bundle's redaction of one file's bytes: known values, URLs, password-like keys, private keys, archives."""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import string
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from viocli.bundle.redaction import MASK, PRIVATE_KEY_MARKER, BundleRedactor

# In the store (what the deployment generated).
NOVA_KEYSTONE = "Zq8vN3kLw2Pc7Rt5Yx1Ab4De6Fg9Hj0K"
NOVA_RABBIT = "Rb7Tq2Wm9Kx4Lp1Ns6Vd3Fh8Gj5Zc0Yw"
NOVA_DB = "Db3Xk8Lm1Qw6Er9Ty2Ui5Op7As4Df0Gh"
MEMCACHE = "Mc5Ab8Cd1Ef4Gh7Ij0Kl3Mn6Op9Qr2St"
HAPROXY_STATS = "Hs2Pq5Rs8Tu1Vw4Xy7Za0Bc3De6Fg9Hi"
VRRP = "Vr4Kp7Lq"  # keepalived holds the whole 8 characters here
STORE = [NOVA_KEYSTONE, NOVA_RABBIT, NOVA_DB, MEMCACHE, HAPROXY_STATS, VRRP]

# Not in the store: only the key, URL and directive rules can catch these.
PLANTED = {
    "vcenter": b"Planted-vCenter-Pw1",
    "heat_key": b"PlantedHeatEncryptionKey32chars0",
    "admin_token": b"PlantedAdminToken77",
    "rabbit_default": b"PlantedRabbitDefault5",
    "mysql_root": b"PlantedMysqlRoot9",
    "sst": b"PlantedSstPw3",
    "horizon": b"PlantedHorizonSecretKey",
    "yaml_pw": b"PlantedYamlPw44",
    "yaml_block": b"PlantedBlockLine",
    "shell": b"PlantedShellPw6",
    "stats_other": b"PlantedStats8",
    "userlist": b"$6$PlantedHash",
    "transport2": b"PlantedTransportTwo",
    "db_url": b"PlantedDbUrlPw",
}

NOVA_CONF = f"""[DEFAULT]
debug = true
transport_url = rabbit://nova:{NOVA_RABBIT}@10.0.0.11:5672,nova:{PLANTED["transport2"].decode()}@10.0.0.12:5672/
[api_database]
connection = mysql+pymysql://nova_api:{PLANTED["db_url"].decode()}@10.0.0.10/nova_api?charset=utf8
[database]
connection = mysql+pymysql://nova:{NOVA_DB}@10.0.0.10/nova
[keystone_authtoken]
auth_type = password
auth_url = http://10.0.0.10:5000
password = {NOVA_KEYSTONE}
memcache_secret_key = {MEMCACHE}
memcache_security_strategy = ENCRYPT
service_token_roles_required = true
service_token_roles = admin
token_cache_time = 300
[service_user]
send_service_user_token = true
auth_type = password
[vmware]
host_password = {PLANTED["vcenter"].decode()}
"""

KEYSTONE_CONF = f"""[DEFAULT]
admin_token = {PLANTED["admin_token"].decode()}
[token]
provider = fernet
expiration = 3600
token_lifetime = 7200
[fernet_tokens]
max_active_keys = 3
key_repository = /etc/keystone/fernet-keys/
[auth]
methods = external,password,token
[security_compliance]
password_expires_days = 90
#admin_token = <None>
"""

HEAT_CONF = f"""[DEFAULT]
auth_encryption_key = {PLANTED["heat_key"].decode()}
"""

RABBITMQ_CONF = f"""loopback_users = none
default_user = openstack
default_pass = {PLANTED["rabbit_default"].decode()}
cluster_partition_handling = pause_minority
"""

HAPROXY_CFG = f"""listen stats
    bind 10.0.0.10:1984
    stats enable
    stats auth admin:'{HAPROXY_STATS}'
    stats auth ops:{PLANTED["stats_other"].decode()}
userlist ops
    user ops password {PLANTED["userlist"].decode()}
"""

MY_CNF = f"""[client]
user = root
password="{PLANTED["mysql_root"].decode()}"
[mysqld]
wsrep_sst_auth = root:{PLANTED["sst"].decode()}
ssl_key_file = /etc/mysql/server.key
max_connections = 4096
"""

KEEPALIVED_CONF = f"""vrrp_instance VI_1 {{
    authentication {{
        auth_type PASS
        auth_pass {VRRP}
    }}
}}
"""

LOCAL_SETTINGS = f"""SECRET_KEY = "{PLANTED["horizon"].decode()}"
DEBUG = False
"""

VARS_YAML = f"""openstack:
  auth_type: password
  password: "{PLANTED["yaml_pw"].decode()}"
  tls_cert: |
    keep me
  vmware_password: |
    {PLANTED["yaml_block"].decode()}
    {PLANTED["yaml_block"].decode()}2
  region: RegionOne
"""

ADMIN_RC = f"""export OS_AUTH_URL=http://10.0.0.10:5000/v3
export OS_USERNAME=admin
export OS_PASSWORD='{PLANTED["shell"].decode()}'
export OS_AUTH_TYPE=password
"""

CONFIGS = [NOVA_CONF, KEYSTONE_CONF, HEAT_CONF, RABBITMQ_CONF, HAPROXY_CFG, MY_CNF]
CONFIGS += [KEEPALIVED_CONF, LOCAL_SETTINGS, VARS_YAML, ADMIN_RC]


@pytest.fixture
def redactor() -> BundleRedactor:
    return BundleRedactor(STORE)


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines()


def test_no_planted_or_stored_secret_survives_in_configs(redactor: BundleRedactor) -> None:
    for config in CONFIGS:
        out, count = redactor.redact(config.encode())
        assert count > 0, config
        for secret in [s.encode() for s in STORE] + list(PLANTED.values()):
            assert secret not in out, (secret, out.decode())


def test_nova_conf_keeps_keys_separators_and_non_secret_lines(redactor: BundleRedactor) -> None:
    out, count = redactor.redact(NOVA_CONF.encode())
    assert _lines(out) == [
        b"[DEFAULT]",
        b"debug = true",
        b"transport_url = rabbit://nova:********@10.0.0.11:5672,nova:********@10.0.0.12:5672/",
        b"[api_database]",
        b"connection = mysql+pymysql://nova_api:********@10.0.0.10/nova_api?charset=utf8",
        b"[database]",
        b"connection = mysql+pymysql://nova:********@10.0.0.10/nova",
        b"[keystone_authtoken]",
        b"auth_type = password",
        b"auth_url = http://10.0.0.10:5000",
        b"password = ********",
        b"memcache_secret_key = ********",
        b"memcache_security_strategy = ENCRYPT",
        b"service_token_roles_required = true",
        b"service_token_roles = admin",
        b"token_cache_time = 300",
        b"[service_user]",
        b"send_service_user_token = true",
        b"auth_type = password",
        b"[vmware]",
        b"host_password = ********",
    ]
    # store: rabbit, db, keystone, memcache; URL rule: transport2, db_url; key rule: host_password
    assert count == 7


def test_keystone_conf_masks_only_the_admin_token(redactor: BundleRedactor) -> None:
    out, count = redactor.redact(KEYSTONE_CONF.encode())
    expected = KEYSTONE_CONF.replace(PLANTED["admin_token"].decode(), "********").encode()
    assert out == expected
    assert count == 1
    for line in (b"provider = fernet", b"token_lifetime = 7200", b"max_active_keys = 3", b"#admin_token = <None>"):
        assert line in _lines(out)


def test_rabbitmq_heat_horizon_and_shell_values_are_masked_keys_kept(redactor: BundleRedactor) -> None:
    assert redactor.redact(RABBITMQ_CONF.encode())[0].splitlines()[2] == b"default_pass = ********"
    assert redactor.redact(HEAT_CONF.encode())[0].splitlines()[1] == b"auth_encryption_key = ********"
    assert redactor.redact(LOCAL_SETTINGS.encode()) == (b'SECRET_KEY = "********"\nDEBUG = False\n', 1)
    out, count = redactor.redact(ADMIN_RC.encode())
    assert _lines(out) == [
        b"export OS_AUTH_URL=http://10.0.0.10:5000/v3",
        b"export OS_USERNAME=admin",
        b"export OS_PASSWORD='********'",
        b"export OS_AUTH_TYPE=password",
    ]
    assert count == 1


def test_haproxy_keepalived_and_my_cnf(redactor: BundleRedactor) -> None:
    out, _ = redactor.redact(HAPROXY_CFG.encode())
    assert _lines(out)[2:] == [
        b"    stats enable",
        b"    stats auth admin:'********'",
        b"    stats auth ops:********",
        b"userlist ops",
        b"    user ops password ********",
    ]
    out, count = redactor.redact(KEEPALIVED_CONF.encode())
    assert b"        auth_type PASS" in _lines(out)
    assert b"        auth_pass ********" in _lines(out)
    assert count == 1  # the store masked it; the directive rule saw it masked already
    out, _ = redactor.redact(MY_CNF.encode())
    assert _lines(out) == [
        b"[client]",
        b"user = root",
        b'password="********"',
        b"[mysqld]",
        b"wsrep_sst_auth = ********",
        b"ssl_key_file = /etc/mysql/server.key",
        b"max_connections = 4096",
    ]


def test_keepalived_truncated_password_not_in_store_is_still_masked() -> None:
    out, count = BundleRedactor([VRRP + "rest-of-the-stored-value"]).redact(KEEPALIVED_CONF.encode())
    assert VRRP.encode() not in out
    assert b"        auth_pass ********" in _lines(out)
    assert count == 1


def test_yaml_values_and_block_scalars(redactor: BundleRedactor) -> None:
    out, count = redactor.redact(VARS_YAML.encode())
    assert _lines(out) == [
        b"openstack:",
        b"  auth_type: password",
        b'  password: "********"',
        b"  tls_cert: |",
        b"    keep me",
        b"  vmware_password: |",
        b"    ********",
        b"  region: RegionOne",
    ]
    assert count == 2


def test_empty_values_are_left_alone() -> None:
    data = b'password =\nadmin_token = ""\nsecret:\n  nested: 1\nauth_type = password\n'
    assert BundleRedactor().redact(data) == (data, 0)


def test_key_names_are_matched_case_insensitively() -> None:
    out, count = BundleRedactor().redact(b"Admin_Password = Xyz123456\nDB_PASSWD=abc12345\n")
    assert out == b"Admin_Password = ********\nDB_PASSWD=********\n"
    assert count == 2


def test_log_line_with_a_store_secret(redactor: BundleRedactor) -> None:
    line = (
        f"2026-12-05 10:00:01.123 1234 DEBUG nova.compute [req-1 - - - -] connecting with {NOVA_KEYSTONE} "
        f"to http://10.0.0.10:5000/v3\n"
    ).encode()
    out, count = redactor.redact(line)
    assert out == line.replace(NOVA_KEYSTONE.encode(), MASK)
    assert count == 1


def test_log_line_with_inline_keys_json_and_options() -> None:
    line = (
        b'2026-12-05 INFO req body {"user": "admin", "password": "Pl4nted\\"Json"} '
        b"token=Pl4ntedToken&x=1 cmd: openstack --os-password Pl4ntedCli --os-username admin "
        b"keystone_authtoken.password = Pl4ntedOslo token validated "
        b"ALTER USER 'nova'@'%' IDENTIFIED BY 'Pl4ntedSql';\n"
    )
    out, count = BundleRedactor().redact(line)
    assert out == (
        b'2026-12-05 INFO req body {"user": "admin", "password": "********"} '
        b"token=********&x=1 cmd: openstack --os-password ******** --os-username admin "
        b"keystone_authtoken.password = ******** token validated "
        b"ALTER USER 'nova'@'%' IDENTIFIED BY '********';\n"
    )
    assert count == 5


def test_non_utf8_log(redactor: BundleRedactor) -> None:
    data = b"\xff\xfe caf\xe9 " + NOVA_DB.encode() + b" \x80\x81 password=\xe9t\xe9-secret \xc3\x28\n"
    out, count = redactor.redact(data)
    assert out == b"\xff\xfe caf\xe9 ******** \x80\x81 password=******** \xc3\x28\n"
    assert count == 2


def test_rotated_gz_log_is_redacted_inside_and_recompressed(redactor: BundleRedactor) -> None:
    log = b"".join(f"2026-12-05 line {i} ok\n".encode() for i in range(5000))
    log += f"rabbit://nova:{NOVA_RABBIT}@10.0.0.11:5672/ password = {PLANTED['vcenter'].decode()}\n".encode()
    packed = gzip.compress(log, mtime=1234)
    out, count = redactor.redact_file("nova-compute.log.3.gz", packed)
    assert out[:2] == b"\x1f\x8b"
    assert out[4:8] == b"\x00\x00\x00\x00"  # mtime 0: the same input gives the same bundle
    plain = gzip.decompress(out)
    assert NOVA_RABBIT.encode() not in plain and PLANTED["vcenter"] not in plain
    assert plain.endswith(b"rabbit://nova:********@10.0.0.11:5672/ password = ********\n")
    assert plain.startswith(b"2026-12-05 line 0 ok\n")
    assert count == 2
    assert redactor.redact_file("nova-compute.log.3.gz", packed) == (out, 2)


@pytest.mark.parametrize(
    ("name", "compress", "decompress"),
    [("a.log.1.xz", lzma.compress, lzma.decompress), ("a.log.1.bz2", bz2.compress, bz2.decompress)],
)
def test_xz_and_bz2_logs(
    redactor: BundleRedactor, name: str, compress: Callable[[bytes], bytes], decompress: Callable[[bytes], bytes]
) -> None:
    out, count = redactor.redact_file(name, compress(b"x " + MEMCACHE.encode() + b" y\n"))
    assert decompress(out) == b"x ******** y\n"
    assert count == 1


def test_a_gz_name_on_plain_data_is_redacted_as_raw_bytes(redactor: BundleRedactor) -> None:
    data = f"not compressed at all {NOVA_DB}\n".encode()
    assert redactor.redact_file("odd.log.gz", data) == (b"not compressed at all ********\n", 1)


def test_a_truncated_gz_keeps_its_redacted_readable_part_and_says_why(redactor: BundleRedactor) -> None:
    log = b"".join(f"line {i} {NOVA_DB}\n".encode() for i in range(20000))
    packed = gzip.compress(log)
    broken = packed[: len(packed) // 2]
    out, count = redactor.redact_file("nova.log.2.gz", broken)
    plain = gzip.decompress(out)
    assert NOVA_DB.encode() not in plain
    assert plain.startswith(b"line 0 ********\nline 1 ********\n")
    assert b"[viocli getlogs: the rest of nova.log.2.gz dropped: EOFError" in plain
    assert 0 < count < 20000


def test_a_gz_with_a_corrupt_header_is_replaced_by_a_marker_not_passed_raw(redactor: BundleRedactor) -> None:
    packed = gzip.compress(f"x {NOVA_DB}\n".encode())
    broken = packed[:3] + b"\xff" + packed[4:]  # reserved flag bits set
    out, count = redactor.redact_file("nova.log.2.gz", broken)
    plain = gzip.decompress(out)
    assert plain.startswith(b"\n[viocli getlogs: the rest of nova.log.2.gz dropped: ")
    assert NOVA_DB.encode() not in plain and count == 0


def test_a_decompression_bomb_is_dropped_with_a_marker(redactor: BundleRedactor) -> None:
    bomb = gzip.compress(b"\0" * 200_000)
    out, count = redactor.redact_file("big.log.gz", bomb, max_decompressed=100_000)
    assert gzip.decompress(out) == (
        b"[viocli getlogs: big.log.gz dropped: it decompresses to more than 100000 bytes]\n"
    )
    assert count == 1
    out, count = redactor.redact_file("big.log.gz", bomb, max_decompressed=200_000)
    assert gzip.decompress(out) == b"\0" * 200_000 and count == 0


def test_a_pem_private_key_goes_and_its_certificate_stays() -> None:
    cert = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGVQdWJsaWM=\n-----END CERTIFICATE-----\n"
    key = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAc2VjcmV0S2V5Qm9keQ==\nAbCdEf0123+/=\n"
    key += b"-----END RSA PRIVATE KEY-----"
    pkcs8 = b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    data = cert + key + b"\n" + pkcs8 + b"\n"
    out, count = BundleRedactor().redact(data)
    assert out == cert + PRIVATE_KEY_MARKER + b"\n" + PRIVATE_KEY_MARKER + b"\n"
    assert count == 2


def test_a_pem_private_key_in_a_yaml_value_or_cut_short() -> None:
    yaml = b"tls:\n  private_key: |\n    -----BEGIN EC PRIVATE KEY-----\n    MHcCAQEEIB5lY3JldA==\n"
    yaml += b"    -----END EC PRIVATE KEY-----\n  cert_file: /etc/a.pem\n"
    out, _ = BundleRedactor().redact(yaml)
    assert b"MHcCAQEEIB5lY3JldA==" not in out
    assert out.endswith(b"  cert_file: /etc/a.pem\n")
    cut = b"log: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAABG5vbmU"
    out, count = BundleRedactor().redact(cut)
    assert out == b"log: " + PRIVATE_KEY_MARKER and count == 1


def _special_secret(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits
    body = list("".join(rng.choices(alphabet, k=20)) + "/+@%: ")
    rng.shuffle(body)
    return "".join(body).strip() + "/+@%:"


def test_url_quoted_secrets_with_special_characters() -> None:
    rng = random.Random(20261205)
    secrets = [_special_secret(rng) for _ in range(5)]
    redactor = BundleRedactor(secrets)
    lines = []
    for secret in secrets:
        assert quote(secret, safe="") != secret != quote_plus(secret, safe="")
        lines.append(f"transport_url = rabbit://nova:{quote(secret, safe='')}@10.0.0.11:5672/")
        lines.append(f"GET /auth?user=nova&pw={quote_plus(secret, safe='')} HTTP/1.1")
        lines.append(f"raw {secret} end")
    data = "\n".join(lines).encode() + b"\n"
    out, count = redactor.redact(data)
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), quote_plus(secret, safe="")):
            assert form.encode() not in out
    assert _lines(out)[:3] == [
        b"transport_url = rabbit://nova:********@10.0.0.11:5672/",
        b"GET /auth?user=nova&pw=******** HTTP/1.1",
        b"raw ******** end",
    ]
    assert count == 15


def test_url_passwords_not_in_the_store_with_raw_at_and_slash() -> None:
    data = (
        b"transport_url = rabbit://u1:p1@h1:5672,u2:p@2@h2:5672,u3:p/3@[fd00::3]:5672/vhost\n"
        b"connection = mysql+pymysql://nova:pw@db/nova\n"
        b"redis://:RedisPw@10.0.0.5:6379 http://10.0.0.10:5000/v3 amqp://guest@host/\n"
    )
    out, count = BundleRedactor().redact(data)
    assert out == (
        b"transport_url = rabbit://u1:********@h1:5672,u2:********@h2:5672,u3:********@[fd00::3]:5672/vhost\n"
        b"connection = mysql+pymysql://nova:********@db/nova\n"
        b"redis://:********@10.0.0.5:6379 http://10.0.0.10:5000/v3 amqp://guest@host/\n"
    )
    assert count == 5


def test_transport_url_with_several_stored_hosts(redactor: BundleRedactor) -> None:
    hosts = ",".join(f"nova:{NOVA_RABBIT}@10.0.0.{i}:5672" for i in range(11, 14))
    out, count = redactor.redact(f"transport_url = rabbit://{hosts}/\n".encode())
    masked = ",".join(f"nova:********@10.0.0.{i}:5672" for i in range(11, 14))
    assert out == f"transport_url = rabbit://{masked}/\n".encode()
    assert count == 3


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    redactor = BundleRedactor(["inner-secret", "outer-inner-secret-value", "abc"])
    out, count = redactor.redact(b"a outer-inner-secret-value b inner-secret c abc\n")
    assert out == b"a ******** b ******** c abc\n"  # "abc" is shorter than MIN_SECRET_LENGTH
    assert count == 2


def test_overlapping_secrets_are_masked_as_one() -> None:
    out, count = BundleRedactor(["abcdef", "defghi"]).redact(b"x abcdefghi y")
    assert out == b"x ******** y" and count == 1


def test_oslo_escaped_dollar_and_json_escaped_forms() -> None:
    redactor = BundleRedactor(['pa$word"with/quote'])
    out, count = redactor.redact(b'a pa$$word"with/quote b {"v": "pa$word\\"with/quote"}\n')
    assert out == b'a ******** b {"v": "********"}\n'
    assert count == 2
