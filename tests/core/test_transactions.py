# Transactions (meter/transactions.py, docs/transactions.md): the MEP
# guide's worked example and ET53 header, every response type and refusal,
# all-or-nothing, the procedure rule, the PLC tables, group broadcasts, the
# EP61 lock, and exactly-once execution across a power cut.
from osgp_meter import access as A
from osgp_meter import transactions as T
from osgp_meter.device import MEP_LIMITS
from osgp_meter.firmware import Firmware
from osgp_meter.catalogue import T_FLAGS, F_NV

NOW = 1_700_000_000_000
MAK = A.ROLE_MAK
MBK = A.ROLE_MBK
ET03 = 2048 + 3
ET08 = 2048 + 8
BT07 = 7
BT08 = 8
BT23 = 23
LOGS = (70, 71, 72, 73, 74, 3, 2048 + 18, 2048 + 48, 2048 + 79)   # what a table-written event touches


def firmware():
    return Firmware({"mep_secure": False}, NOW)


def u16(n):
    return bytes((n & 0xFF, n >> 8))


def txn(number, records, typ=0, groups=None):
    body = b""
    if groups is not None:
        body += bytes((len(groups),))
        for g in groups:
            body += u16(g)
    for r in records:
        body += u16(len(r)) + r
    return u16(7 + len(body)) + bytes((typ,)) + u16(number) + body + u16(number)


def c12_read(tid, offset, count):
    return bytes((0x3F, tid >> 8, tid & 0xFF, 0, offset >> 8, offset & 0xFF, count >> 8, count & 0xFF))


def c12_write(tid, data, offset=0):
    n = len(data)
    return bytes((0x4F, tid >> 8, tid & 0xFF, 0, offset >> 8, offset & 0xFF, n >> 8, n & 0xFF)) + data


def c12_call(number, psn, params=b""):
    data = u16(number) + bytes((psn,)) + params
    return bytes((0x40, 0, BT07, 0, len(data))) + data


def put(m, tid, data, offset=0, role=MAK, limits=MEP_LIMITS, now=NOW):
    """One partial write to a table; the response code."""
    return m.execute(c12_write(tid, data, offset), role, limits, now)[0]


def submit(m, body, tid=T.ET52, role=MAK, limits=MEP_LIMITS, now=NOW):
    """Write a transaction in chunks the port allows; the last write's code."""
    step = limits.max_write
    code = None
    for off in range(0, len(body), step):
        code = put(m, tid, body[off:off + step], off, role, limits, now)
        if code:
            return code
    return code


def answer(m, tid=T.ET53):
    buf = m.store.get(tid)
    size = buf[0] | (buf[1] << 8)
    return T.decode(buf[0:size]) if size else None


def others(m, ignore=(T.ET52, T.ET53, T.ET27, T.ET28) + LOGS):
    snap = m.store.snapshot()
    for tid in ignore:
        snap.pop(tid, None)
    return snap


# -- the guide's examples -------------------------------------------------------

def test_worked_example_reads_bt23_offset_0_count_44():
    m = firmware().meter
    req = bytes.fromhex("11 00 00 02 00 08 00 3F 00 17 00 00 00 00 2C 02 00")
    assert T.parse(req) == (0, 2, None, [bytes.fromhex("3F 00 17 00 00 00 00 2C")])
    assert submit(m, req) == 0
    data = m.store.read(BT23, 0, 44)
    raw = m.store.get(T.ET53)
    assert raw[0:5] == bytes.fromhex("38 00 01 02 00")          # 56 bytes, responses, number 2
    assert raw[5:56] == bytes.fromhex("2F 00 00 00 2C") + data + bytes.fromhex("02 00")
    assert raw[56:] == bytes(len(raw) - 56)


def test_et53_header_example():
    # A 99-byte read with transaction number 1 answers in exactly 0x6F bytes.
    m = firmware().meter
    assert submit(m, txn(1, [c12_read(BT23, 0, 99)])) == 0
    assert m.store.read(T.ET53, 0, 5) == bytes.fromhex("6F 00 01 01 00")


# -- all or nothing ------------------------------------------------------------------

def test_all_answered_commits_type_1():
    m = firmware().meter
    assert submit(m, txn(7, [c12_write(ET03, b"ABC"), c12_read(ET03, 0, 3)])) == 0
    assert answer(m) == (T.RESPONSES, 7, None, [b"\x00", b"\x00\x00\x03ABC"])
    assert m.store.read(ET03, 0, 3) == b"ABC"


def test_a_failed_request_undoes_the_writes_before_it_and_skips_the_rest():
    m = firmware().meter
    before = others(m)
    body = txn(8, [c12_write(ET03, b"XYZ"), c12_write(0, b"\x01"), c12_read(ET03, 0, 3)])
    assert submit(m, body) == 0                     # the write itself is fine
    assert answer(m) == (T.PARTIAL, 8, None, [b"\x00", b"\x05", b""])   # BT00 is read-only
    assert others(m) == before
    assert m.store.read(ET03, 0, 3) != b"XYZ"


def test_role_of_the_trailing_write_runs_the_requests():
    m = firmware().meter
    body = txn(9, [c12_write(ET03, b"Q")])
    assert submit(m, body[:-2]) == 0                 # MAK writes the list
    assert put(m, T.ET52, body[-2:], len(body) - 2, MBK) == 0   # MBK completes it
    assert answer(m) == (T.PARTIAL, 9, None, [b"\x03"])          # MBK may not write ET03
    assert m.store.read(ET03, 0, 1) != b"Q"


def test_answers_that_do_not_fit_the_response_table():
    # Four 465-byte reads (the MEP maximum): the fourth does not fit the
    # 1785-byte ET53 and answers 0x04; nothing of the transaction stays.
    m = firmware().meter
    reads = [c12_read(BT23, 0, MEP_LIMITS.max_read)] * 4
    assert submit(m, txn(10, [c12_write(ET03, b"W")] + reads)) == 0
    got = answer(m)
    assert got[0] == T.PARTIAL and got[3][0] == b"\x00" and got[3][4] == b"\x04"
    assert [len(a) for a in got[3][1:4]] == [468, 468, 468]
    assert m.store.read(ET03, 0, 1) != b"W"
    assert m.store.get(T.ET53)[0] | (m.store.get(T.ET53)[1] << 8) <= m.store.size(T.ET53)


def test_port_limits_apply_inside():
    m = firmware().meter
    assert submit(m, txn(11, [c12_read(BT23, 0, MEP_LIMITS.max_read + 1)])) == 0
    assert answer(m) == (T.PARTIAL, 11, None, [b"\x04"])


def test_no_transaction_inside_a_transaction():
    m = firmware().meter
    inner = txn(1, [c12_read(BT23, 0, 1)])
    assert submit(m, txn(12, [c12_write(ET03, b"N"), c12_write(T.ET52, inner)])) == 0
    assert answer(m) == (T.PARTIAL, 12, None, [b"\x00", b"\x05"])
    assert m.store.read(ET03, 0, 1) != b"N"


def test_a_failed_transaction_stages_no_pending_table():
    # Rollback covers the features' nv_parts too: here meter/pending.py's.
    m = firmware().meter
    stage = bytes.fromhex("4F 10 06 00 00 03 00 0A 10 1A 0C 01 00 00 57 58 59 5A")   # BT06 + 4096, PED
    look = bytes.fromhex("3F 10 06 00 00 03 00 0A")
    nothing = m.execute(look, MAK, MEP_LIMITS, NOW)
    assert submit(m, txn(35, [stage, c12_write(0, b"\x01")])) == 0
    assert answer(m) == (T.PARTIAL, 35, None, [b"\x00", b"\x05"])
    assert m.execute(look, MAK, MEP_LIMITS, NOW) == nothing
    assert submit(m, txn(36, [stage, look])) == 0
    staged = bytes.fromhex("00 00 0A 10 1A 0C 01 00 00 57 58 59 5A")
    assert answer(m) == (T.RESPONSES, 36, None, [b"\x00", staged])
    assert m.execute(look, MAK, MEP_LIMITS, NOW) == staged


# -- procedures: at most one, the last request ---------------------------------------

def test_procedure_runs_last_and_commits():
    m = firmware().meter
    body = txn(13, [c12_write(ET03, b"P"), c12_call(10, 5, bytes.fromhex("031a0b1a0c2238"))])
    assert submit(m, body) == 0
    assert answer(m) == (T.RESPONSES, 13, None, [b"\x00", b"\x00"])
    assert m.store.read(ET03, 0, 1) == b"P"
    assert m.store.read(BT08, 0, 4) == bytes((10, 0, 5, 0))
    assert m.utc(NOW) // 86400 == 20783                # 2026-11-26


def test_refused_procedure_undoes_the_writes_and_reports_in_bt08():
    m = firmware().meter
    assert submit(m, txn(14, [c12_write(ET03, b"R"), c12_call(10, 6, b"\x03")])) == 0
    assert answer(m) == (T.PARTIAL, 14, None, [b"\x00", b"\x00"])
    assert m.store.read(ET03, 0, 1) != b"R"
    assert m.store.read(BT08, 0, 4) == bytes((10, 0, 6, 2))       # invalid parameter
    m2 = firmware().meter
    assert submit(m2, txn(15, [c12_write(ET03, b"R"), c12_call(10, 6, bytes(7))]), role=MAK) == 0
    assert answer(m2)[0] == T.PARTIAL
    m3 = firmware().meter                      # MBK may not call BP10: result 5
    assert submit(m3, txn(16, [c12_call(10, 7, bytes.fromhex("031a0b1a0c2238"))]), role=MBK) == 0
    assert answer(m3) == (T.PARTIAL, 16, None, [b"\x00"])
    assert m3.store.read(BT08, 0, 4) == bytes((10, 0, 7, 5))


def test_procedure_not_last_is_refused_whole():
    m = firmware().meter
    before = m.store.snapshot()
    body = txn(17, [c12_call(10, 5, bytes.fromhex("031a0b1a0c2238")), c12_write(ET03, b"S")])
    assert T.parse(body) is None
    assert put(m, T.ET52, body) == 5
    assert m.store.snapshot() == before


# -- malformed lists: 0x05, nothing stored, nothing run --------------------------------

def test_malformed_lists_are_refused_and_change_nothing():
    m = firmware().meter
    good = txn(18, [c12_read(BT23, 0, 4)])
    bad = [
        good[:5] + u16(9) + good[7:],                      # a record length running past the end
        good[:5] + u16(7) + good[7:],                      # records end before the trailing number
        good[:2] + b"\x01" + good[3:],                     # type 1 is a response, not a request
        txn(18, []),                                       # no request
        txn(18, [b""]),                                    # an empty request
        txn(18, [c12_read(BT23, 0, 4)], 3, []),            # a group broadcast to no group
        txn(18, [c12_read(BT23, 0, 4)], 3, [0x0100, 0]),   # 0x0000 is invalid
        txn(18, [c12_read(BT23, 0, 4)], 3, [0x0100])[:5] + b"\x09" + txn(18, [c12_read(BT23, 0, 4)], 3, [0x0100])[6:],
    ]
    for body in bad:
        before = m.store.snapshot()
        assert put(m, T.ET52, body) == 5, body
        assert m.store.snapshot() == before
    # A size field the table cannot hold is refused when written.
    before = m.store.snapshot()
    assert put(m, T.ET52, u16(m.store.size(T.ET52) + 1)) == 5
    assert put(m, T.ET52, u16(6)) == 5
    assert m.store.snapshot() == before
    # A trailing number that differs from the leading one: stored, nothing runs.
    assert put(m, T.ET52, good[:-2] + u16(19)) == 0
    assert m.store.get(T.ET53) == bytes(m.store.size(T.ET53))


def test_written_in_pieces_it_runs_when_the_last_byte_arrives():
    m = firmware().meter
    body = txn(20, [c12_write(ET03, b"abcd"), c12_read(ET03, 0, 4)])
    n = len(body)
    assert put(m, T.ET52, body[0:5]) == 0
    assert put(m, T.ET52, body[5:n - 1], 5) == 0
    assert answer(m) is None
    assert put(m, T.ET52, body[n - 1:], n - 1) == 0
    assert answer(m)[3][1] == b"\x00\x00\x04abcd"


# -- idempotence and power loss --------------------------------------------------------

def test_the_same_number_and_crc_does_not_run_again():
    m = firmware().meter
    body = txn(21, [c12_write(ET03, b"1")])
    assert submit(m, body) == 0 and m.store.read(ET03, 0, 1) == b"1"
    assert put(m, ET03, b"2") == 0
    assert submit(m, body) == 0
    assert m.store.read(ET03, 0, 1) == b"2"              # not run again
    assert submit(m, txn(22, [c12_write(ET03, b"1")])) == 0
    assert m.store.read(ET03, 0, 1) == b"1"              # a new number runs
    assert submit(m, txn(22, [c12_write(ET03, b"3")])) == 0
    assert m.store.read(ET03, 0, 1) == b"3"              # same number, other CRC runs


def persisted(fw):
    """What survives a power cut: the non-volatile tables and the nv_parts."""
    store = fw.meter.store
    tables = {}
    for tid, w in store.written.items():
        if store.tables[tid][T_FLAGS] & F_NV:
            tables[tid] = bytes(w)
    parts = {}
    for name, (get, _) in fw.meter.nv_parts.items():
        parts[name] = bytes(get())
    return tables, parts


def boot(state, now=NOW):
    """Power back: a new Firmware, the saved state put back, resume()."""
    fw = firmware()
    m = fw.meter
    tables, parts = state
    for tid in tables:
        m.store.write(tid, 0, tables[tid])
    for name in parts:
        m.nv_parts[name][1](parts[name])
    return fw, T.resume(m, now)


def test_power_cut_after_the_run_does_not_run_it_again():
    fw = firmware()
    assert submit(fw.meter, txn(23, [c12_write(ET03, b"once")])) == 0
    state = persisted(fw)
    fw2, ran = boot(state)
    assert ran == 0
    assert fw2.meter.store.read(ET03, 0, 4) == b"once"
    assert fw2.meter.store.get(T.ET53) == bytes(fw2.meter.store.size(T.ET53))   # RAM: empty, not re-run


def test_power_cut_before_the_run_runs_it_at_boot_exactly_once():
    fw = firmware()
    body = txn(24, [c12_write(ET03, b"boot"), c12_read(ET03, 0, 4)])
    assert submit(fw.meter, body[:-2], role=MBK) == 0      # MBK wrote it (MBK may write ET52)
    tables, parts = persisted(fw)
    # The trailing number reached flash, the run did not happen: the cut.
    et52 = bytearray(tables[T.ET52])
    et52[len(body) - 2:len(body)] = body[-2:]
    tables[T.ET52] = bytes(et52)
    fw2, ran = boot((tables, parts))
    assert ran == 1
    assert answer(fw2.meter) == (T.PARTIAL, 24, None, [b"\x03", b""])   # as MBK, the writer
    fw3 = firmware()
    assert submit(fw3.meter, body[:-2]) == 0                # the same with MAK
    tables, parts = persisted(fw3)
    tables[T.ET52] = bytes(tables[T.ET52][:len(body) - 2]) + body[-2:] + bytes(tables[T.ET52][len(body):])
    fw4, ran = boot((tables, parts))
    assert ran == 1
    assert answer(fw4.meter) == (T.RESPONSES, 24, None, [b"\x00", b"\x00\x00\x04boot"])
    fw5, ran = boot(persisted(fw4))
    assert ran == 0
    assert fw5.meter.store.read(ET03, 0, 4) == b"boot"


def test_nv_part_round_trip_and_garbage():
    fw = firmware()
    t = fw.meter.txn
    assert submit(fw.meter, txn(25, [c12_read(BT23, 0, 1)])) == 0
    b = t.nv_get()
    assert len(b) == 13 and b[0] == 1
    t2 = firmware().meter.txn
    t2.nv_put(b"\x07junk")
    assert t2.done == {}
    t2.nv_put(b)
    assert t2.nv_get() == b and t2.done[T.ET52][0] == 25 and t2.roles[T.ET52] == MAK


# -- the PLC tables ---------------------------------------------------------------------

def test_plc_transaction_in_et27_answers_in_et28_with_plc_limits():
    fw = firmware()
    m = fw.meter
    lim = fw.plc_limits
    assert m.store.size(T.ET27) == 261 and m.store.size(T.ET28) == 769
    body = txn(26, [c12_write(ET03, b"plc"), c12_read(BT23, 0, 40), c12_read(BT23, 0, 40)])
    assert submit(m, body, T.ET27, A.ROLE_PLC, lim) == 0
    got = answer(m, T.ET28)
    assert got[0] == T.RESPONSES and [len(a) for a in got[3]] == [1, 43, 43]
    assert answer(m) is None                               # ET53 untouched
    assert submit(m, txn(27, [c12_read(BT23, 0, lim.max_read + 1)]), T.ET27, A.ROLE_PLC, lim) == 0
    assert answer(m, T.ET28) == (T.PARTIAL, 27, None, [b"\x04"])


# -- group broadcasts --------------------------------------------------------------------

def test_group_broadcast_runs_only_in_members():
    fw = firmware()
    m = fw.meter
    lim = fw.plc_limits
    body = txn(28, [c12_write(ET03, b"G")], T.GROUP, [0x0201, 0x0305])
    assert submit(m, body, T.ET27, A.ROLE_PLC, lim) == 0
    raw = m.store.get(T.ET28)
    assert raw[0:9] == bytes.fromhex("07 00 04 1C 00 1C 00 00 00")   # denied
    assert m.store.read(ET03, 0, 1) != b"G"
    assert put(m, ET08, u16(0x03FF), 0, MAK) == 0          # every sub-group of 3
    body = txn(29, [c12_write(ET03, b"G")], T.GROUP, [0x0201, 0x0305])
    assert submit(m, body, T.ET27, A.ROLE_PLC, lim) == 0
    assert answer(m, T.ET28) == (T.RESPONSES, 29, None, [b"\x00"])
    assert m.store.read(ET03, 0, 1) == b"G"


def test_group_ffff_reaches_every_meter():
    m = firmware().meter
    assert T.member(m, [0xFFFF]) and T.member(m, [0xFF07]) and not T.member(m, [0x0102])
    assert submit(m, txn(30, [c12_read(BT23, 0, 1)], T.GROUP, [0xFFFF])) == 0
    assert answer(m)[0] == T.RESPONSES


# -- EP61, the MEP transaction lock -------------------------------------------------------

def call(m, role, lock, psn, now=NOW):
    assert m.execute(c12_call(T.EP61, psn, bytes((lock,)) if lock is not None else b""),
                     role, MEP_LIMITS, now) == b"\x00"
    return m.store.read(BT08, 3, 1)[0]


def test_ep61_lock_results():
    m = firmware().meter
    body = txn(31, [c12_read(BT23, 0, 1)])
    assert call(m, MAK, 1, 5) == 0
    assert call(m, MBK, 1, 6) == 3                 # the other client holds it
    assert call(m, MBK, 0, 7) == 3
    assert submit(m, body, role=MBK) == 8          # ET52 is locked for MBK: data locked
    assert submit(m, body, role=A.ROLE_PLC, limits=MEP_LIMITS) == 8
    assert submit(m, body, role=MAK) == 0
    assert call(m, MAK, 2, 8) == 2                 # invalid parameter
    assert call(m, MAK, None, 9) == 2
    assert call(m, A.ROLE_PLC, 1, 5) == 5          # not a MEP client
    assert call(m, A.ROLE_MK, 1, 6) == 5
    assert call(m, MAK, 0, 7) == 0                 # unlocked
    assert call(m, MBK, 1, 8) == 0
    assert call(m, MBK, 1, 9, NOW + 9999) == 0     # re-lock: 10 s from now
    assert call(m, MAK, 1, 5, NOW + 19998) == 3
    assert call(m, MAK, 1, 6, NOW + 19999) == 0    # lapsed after 10 s
    assert submit(m, txn(32, [c12_read(BT23, 0, 1)]), role=MAK, now=NOW + 20000) == 0


def test_ep61_lock_lapses_by_itself():
    m = firmware().meter
    assert call(m, MBK, 1, 5) == 0
    assert submit(m, txn(33, [c12_read(BT23, 0, 1)]), role=MAK, now=NOW + 9999) == 8
    assert submit(m, txn(33, [c12_read(BT23, 0, 1)]), role=MAK, now=NOW + 10000) == 0


def test_keys_that_may_not_write_the_request_tables():
    m = firmware().meter
    before = m.store.snapshot()
    body = txn(34, [c12_read(BT23, 0, 1)])
    assert put(m, T.ET52, body, 0, A.ROLE_RK) == 3
    assert put(m, T.ET27, body, 0, MBK) == 3       # ET27 is not MBK's
    assert m.store.snapshot() == before
    assert put(m, T.ET52, bytes(7)) == 0            # size 0: an empty table, a plain write
