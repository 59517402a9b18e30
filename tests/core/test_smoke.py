# Dual-runtime smoke test: the package imports and the role masks are distinct.
from osgp_meter import access


def test_roles_are_distinct_bits():
    seen = 0
    for name, bit in access.ROLE_NAMES:
        assert bit & seen == 0, name
        seen |= bit
    assert seen == access.ALL
