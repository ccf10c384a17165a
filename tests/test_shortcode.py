from __future__ import annotations

from shelter.core import shortcode


def test_generated_codes_validate_and_normalise_from_what_people_type():
    for _ in range(200):
        code = shortcode.generate()
        assert shortcode.normalise(code) == code
        typed = shortcode.display(code).lower().replace("1", "l").replace("0", "o")
        assert shortcode.normalise(" " + typed + " ") == code


def test_every_single_typo_and_neighbour_swap_is_caught():
    for _ in range(100):
        code = shortcode.generate()
        for i in range(len(code)):
            for ch in shortcode.ALPHABET:
                if ch != code[i]:
                    assert shortcode.normalise(code[:i] + ch + code[i + 1:]) is None
        for i in range(len(code) - 1):
            if code[i] != code[i + 1]:
                swapped = code[:i] + code[i + 1] + code[i] + code[i + 2:]
                assert shortcode.normalise(swapped) is None
    assert shortcode.normalise("ABC") is None and shortcode.normalise("") is None
