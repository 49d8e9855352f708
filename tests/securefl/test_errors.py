"""One root for every error: securefl.errors re-exports crypto_backends' and all derive from SecureFLError."""

from __future__ import annotations

import inspect

import crypto_backends.errors
import securefl.errors


def _exception_classes(module: object) -> dict[str, type]:
    return {name: cls for name, cls in vars(module).items()
            if inspect.isclass(cls) and issubclass(cls, BaseException) and not name.startswith("_")
            and cls.__module__ == module.__name__}  # type: ignore[attr-defined]


def test_the_two_modules_define_errors():
    # guards the tests below against a lookup that finds nothing
    assert "SecureFLError" in _exception_classes(crypto_backends.errors)
    assert "CryptoError" in _exception_classes(crypto_backends.errors)
    assert "ConfigError" in _exception_classes(securefl.errors)


def test_the_root_is_defined_once():
    assert securefl.errors.SecureFLError is crypto_backends.errors.SecureFLError
    assert "SecureFLError" not in _exception_classes(securefl.errors)


def test_every_error_derives_from_the_root_and_is_importable_from_securefl_errors():
    classes = {**_exception_classes(crypto_backends.errors), **_exception_classes(securefl.errors)}
    for name, cls in classes.items():
        assert issubclass(cls, securefl.errors.SecureFLError), name
        assert getattr(securefl.errors, name, None) is cls, f"securefl.errors.{name} is not {cls.__module__}.{name}"
        assert name in securefl.errors.__all__, name


def test_star_import_gives_exactly_the_errors():
    namespace: dict[str, object] = {}
    exec("from securefl.errors import *", namespace)  # noqa: S102 - the module's public surface
    namespace.pop("__builtins__")
    assert set(namespace) == set(securefl.errors.__all__)
    assert all(inspect.isclass(v) and issubclass(v, securefl.errors.SecureFLError) for v in namespace.values())
