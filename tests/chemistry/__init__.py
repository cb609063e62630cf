"""Tests of the pure chemistry package."""
