package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/danmaku/danmaku/client"
)

func ExampleClient_Messages() {
	c, err := client.New(client.Config{
		BaseURL: "http://127.0.0.1:8080",
		Room:    "lobby",
		OnState: func(from, to client.State) { log.Printf("feed %v → %v", from, to) },
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for m, err := range c.Messages(ctx) {
		if err != nil {
			log.Fatal(err) // only what retrying cannot fix
		}
		fmt.Printf("%d.%03d %s: %s\n", m.Second, m.OffsetMS, m.UserName, m.Text)
	}
	log.Printf("%+v", c.Stats())
}

func ExampleClient_PostMessages() {
	c, err := client.New(client.Config{BaseURL: "http://127.0.0.1:8080", Room: "lobby"})
	if err != nil {
		log.Fatal(err)
	}
	acc, err := c.PostMessages(context.Background(), client.Post{Text: "233333", Color: "#fe0302", Mode: "top"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(acc[0].ID, acc[0].Second)
}
