import pytest

from atlantis.registry import Registry, UnknownNameError


def test_register_create_and_unknown_name_lists_valid_names():
    reg: Registry[object] = Registry("widget")

    @reg.register("Alpha")
    def alpha(x: int = 1) -> object:
        """Makes alphas."""
        return ("alpha", x)

    reg.register("beta")(lambda: "b")
    assert reg.create("alpha", x=2) == ("alpha", 2)
    assert "ALPHA" in reg and reg.names() == ["alpha", "beta"]
    assert reg.describe()["alpha"] == "Makes alphas."
    with pytest.raises(UnknownNameError, match="unknown widget 'gamma'; valid names: alpha, beta"):
        reg.get("gamma")
    with pytest.raises(ValueError, match="twice"):
        reg.register("alpha")(alpha)
