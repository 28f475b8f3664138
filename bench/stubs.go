package main

import "context"

func benchProxy(_ context.Context, e *env) *section   { return &section{id: "proxy", title: "x"} }
func benchIngest(_ context.Context, e *env) *section  { return &section{id: "ingest", title: "x"} }
func benchMemory(_ context.Context, e *env) *section  { return &section{id: "memory", title: "x"} }
