"""Thin HTTP routes: parse, call one service method, return its protocol model."""
